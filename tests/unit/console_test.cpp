// The guest console's host side: a console file stays within its bound however much the guest
// prints, and keeps the newest output.
#include "vmm/vm/console.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace husk {
namespace {

TEST(ConsoleOutput, FileIsBoundedAndKeepsTheNewestOutput) {
  StopState stop;
  VmConfig cfg;
  cfg.console = ConsoleMode::kFile;
  cfg.console_path = std::string(::testing::TempDir()) + "console-bound.log";
  cfg.console_limit = 16 * 1024;
  auto out = ConsoleOutput::open(cfg, stop);
  ASSERT_TRUE(out.ok()) << out.error().message;
  // About 1 MiB of guest output, numbered lines.
  for (int line = 0; line < 20000; ++line) {
    std::string s = "guest line " + std::to_string(line) + " ........................\n";
    for (char c : s) (*out)->put(static_cast<uint8_t>(c));
  }
  struct stat st;
  ASSERT_EQ(stat(cfg.console_path.c_str(), &st), 0);
  EXPECT_LE(st.st_size, 16 * 1024);
  EXPECT_GT(st.st_size, 4 * 1024);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream f(cfg.console_path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  EXPECT_NE(text.find("guest line 19999 "), std::string::npos);  // the newest is there
  EXPECT_EQ(text.find("guest line 1 "), std::string::npos);       // the oldest is gone
  EXPECT_NE(text.find("older console output dropped"), std::string::npos);
}

TEST(ConsoleOutput, PanicBannerStillStopsTheVm) {
  StopState stop;
  VmConfig cfg;
  cfg.console = ConsoleMode::kNone;
  auto out = ConsoleOutput::open(cfg, stop);
  ASSERT_TRUE(out.ok());
  for (char c : std::string("Kernel panic - not syncing: x ---[ end Kernel panic - not syncing: x ]---\n"))
    (*out)->put(static_cast<uint8_t>(c));
  EXPECT_EQ(stop.reason(), StopReason::kGuestPanic);
}

}  // namespace
}  // namespace husk
