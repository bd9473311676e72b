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
  EXPECT_EQ(c->boot.mem_mib, 256u);
  EXPECT_EQ(c->boot.vcpus, 1u);
  EXPECT_EQ(c->boot.cmdline, kDefaultCmdline);
  EXPECT_EQ(c->console, ConsoleMode::kStdio);
  auto d = parse({"--kernel", "k", "--initrd", "i", "--cmdline", "console=ttyS0", "--mem", "512",
                  "--vcpus", "4", "--console", "/tmp/out.log"});
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(*d->boot.initrd, "i");
  EXPECT_EQ(d->boot.cmdline, "console=ttyS0");
  EXPECT_EQ(d->boot.mem_mib, 512u);
  EXPECT_EQ(d->boot.vcpus, 4u);
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

namespace husk {
namespace {

TEST(Config, VirtioDeviceOptions) {
  const char* args[] = {"husk-vmm", "--kernel", "k", "--blk", "a.img", "--blk", "b.img,ro", "--rng",
                        "--net", "tap0", "--net", "tap1,02:00:00:00:00:09"};
  bool exit_ok = false;
  auto c = parse_args(12, args, &exit_ok);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->disks.size(), 2u);
  EXPECT_FALSE(c->disks[0].read_only);
  EXPECT_TRUE(c->disks[1].read_only);
  EXPECT_EQ(c->disks[1].path, "b.img");
  EXPECT_TRUE(c->rng);
  ASSERT_EQ(c->nics.size(), 2u);
  EXPECT_EQ(c->nics[0].tap, "tap0");
  EXPECT_EQ(c->nics[0].mac[5], 1);
  EXPECT_EQ(c->nics[1].mac[5], 9);
  const char* limited[] = {"husk-vmm", "--kernel", "k", "--blk", "a.img,bw=1048576,iops=100",
                           "--net", "tap0,pps=1000,bw=500000,rx_bw=700000,rx_pps=50"};
  auto l = parse_args(7, limited, &exit_ok);
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_EQ(l->disks[0].limit.bytes_per_sec, 1048576u);
  EXPECT_EQ(l->disks[0].limit.ops_per_sec, 100u);
  EXPECT_EQ(l->nics[0].tx_limit.ops_per_sec, 1000u);
  EXPECT_EQ(l->nics[0].tx_limit.bytes_per_sec, 500000u);
  EXPECT_EQ(l->nics[0].rx_limit.bytes_per_sec, 700000u);
  EXPECT_EQ(l->nics[0].rx_limit.ops_per_sec, 50u);
  const char* bad_limit[] = {"husk-vmm", "--kernel", "k", "--blk", "a.img,bw=0"};
  EXPECT_FALSE(parse_args(5, bad_limit, &exit_ok).ok());
  const char* bad_blk[] = {"husk-vmm", "--kernel", "k", "--blk", "a.img,rw"};
  EXPECT_FALSE(parse_args(5, bad_blk, &exit_ok).ok());
  const char* bad_mac[] = {"husk-vmm", "--kernel", "k", "--net", "tap0,01:00:00:00:00:01"};
  EXPECT_FALSE(parse_args(5, bad_mac, &exit_ok).ok());  // multicast
  const char* bad_mac2[] = {"husk-vmm", "--kernel", "k", "--net", "tap0,zz"};
  EXPECT_FALSE(parse_args(5, bad_mac2, &exit_ok).ok());
}

TEST(Config, RestoreAndApi) {
  auto c = parse({"--restore", "/s/state,/s/mem", "--api", "/run/api.sock", "--vsock", "3,/run/v.sock"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->restore_state, "/s/state");
  EXPECT_EQ(c->restore_mem, "/s/mem");
  EXPECT_EQ(c->api_path, "/run/api.sock");
  EXPECT_EQ(parse({"--kernel", "k", "--api", "fd=5"})->api_fd, 5);
  EXPECT_FALSE(parse({"--restore", "/s/state"}).ok());               // no memory file
  EXPECT_FALSE(parse({"--restore", ",/s/mem"}).ok());
  EXPECT_FALSE(parse({"--restore", "a,b", "--kernel", "k"}).ok());    // the snapshot is the guest
  EXPECT_FALSE(parse({"--restore", "a,b", "--initrd", "i"}).ok());
}

}  // namespace
}  // namespace husk
