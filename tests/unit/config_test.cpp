#include "vmm/vm/config.h"

#include <gtest/gtest.h>

#include <vector>

namespace husk {
namespace {

Result<VmConfig> parse(std::vector<const char*> args, bool* exit_ok = nullptr) {
  args.insert(args.begin(), "husk-vmm");
  bool ok = false;
  auto r = parse_args(static_cast<int>(args.size()), args.data(), exit_ok ? exit_ok : &ok);
  return r;
}

TEST(Config, DefaultsAndFullArgs) {
  auto c = parse({"--kernel", "vmlinux"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->mem_mib, 256u);
  EXPECT_EQ(c->vcpus, 1u);
  EXPECT_EQ(c->cmdline, kDefaultCmdline);
  EXPECT_EQ(c->console, ConsoleMode::kStdio);
  auto d = parse({"--kernel", "k", "--initrd", "i", "--cmdline", "console=ttyS0", "--mem", "512",
                  "--vcpus", "4", "--console", "/tmp/out.log"});
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(*d->initrd, "i");
  EXPECT_EQ(d->cmdline, "console=ttyS0");
  EXPECT_EQ(d->mem_mib, 512u);
  EXPECT_EQ(d->vcpus, 4u);
  EXPECT_EQ(d->console, ConsoleMode::kFile);
  EXPECT_EQ(d->console_path, "/tmp/out.log");
  EXPECT_EQ(parse({"--kernel", "k", "--console", "none"})->console, ConsoleMode::kNone);
}

TEST(Config, RejectsBadInput) {
  EXPECT_FALSE(parse({}).ok());                                       // no kernel
  EXPECT_FALSE(parse({"--kernel", "k", "--mem", "0"}).ok());
  EXPECT_FALSE(parse({"--kernel", "k", "--mem", "lots"}).ok());
  EXPECT_FALSE(parse({"--kernel", "k", "--vcpus", "0"}).ok());
  EXPECT_FALSE(parse({"--kernel", "k", "--vcpus", "255"}).ok());
  EXPECT_FALSE(parse({"--kernel", "k", "--bin", "b"}).ok());          // exclusive
  EXPECT_FALSE(parse({"--bin", "b", "--initrd", "i"}).ok());
  EXPECT_FALSE(parse({"--kernel", "k", "--frobnicate"}).ok());
  auto r = parse({"--kernel", "k", "--vcpus", "-3"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("--help"), std::string::npos);
}

TEST(Config, HelpIsNotAnError) {
  bool exit_ok = false;
  auto r = parse({"--help"}, &exit_ok);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(exit_ok);
  EXPECT_NE(r.error().message.find("--kernel"), std::string::npos);
}

}  // namespace
}  // namespace husk
