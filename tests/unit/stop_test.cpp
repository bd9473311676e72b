#include "vmm/vm/stop.h"

#include <gtest/gtest.h>

#include "vmm/vm/console.h"

namespace husk {
namespace {

TEST(Stop, FirstReasonWinsAndNotifiesOnce) {
  StopState s;
  int notified = 0;
  s.set_notify([&] { ++notified; });
  EXPECT_FALSE(s.requested());
  s.request(StopReason::kTripleFault);
  s.request(StopReason::kReset);
  EXPECT_EQ(s.reason(), StopReason::kTripleFault);
  EXPECT_EQ(notified, 1);
}

TEST(Stop, ExitStatuses) {
  EXPECT_EQ(exit_status(StopReason::kReset, 0), 0);
  EXPECT_EQ(exit_status(StopReason::kPowerOff, 0), 0);
  EXPECT_EQ(exit_status(StopReason::kGuestPanic, 0), 2);
  EXPECT_EQ(exit_status(StopReason::kTripleFault, 0), 3);
  EXPECT_EQ(exit_status(StopReason::kVmError, 0), 4);
  EXPECT_EQ(exit_status(StopReason::kSignal, 15), 143);
}

void feed(PanicWatcher& w, const std::string& s) {
  for (char c : s) w.feed(static_cast<uint8_t>(c));
}

TEST(PanicWatcher, ResetAfterPanicBannerIsAPanic) {
  StopState s;
  PanicWatcher w(s);
  feed(w, "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n");
  EXPECT_FALSE(s.requested());  // the guest still prints its trace and resets itself
  s.request(StopReason::kReset);
  EXPECT_EQ(s.reason(), StopReason::kGuestPanic);
}

TEST(PanicWatcher, EndOfPanicStopsAHangingGuest) {
  StopState s;
  PanicWatcher w(s);
  feed(w, "---[ end Kernel panic - not syncing: VFS: Unable to mount root fs ]---\n");
  EXPECT_EQ(s.reason(), StopReason::kGuestPanic);
}

TEST(PanicWatcher, OrdinaryOutputIsNotAPanic) {
  StopState s;
  PanicWatcher w(s);
  feed(w, "HUSK_GUEST_READY\nKernel pan");
  feed(w, std::string(10000, 'x') + "\n");
  s.request(StopReason::kReset);
  EXPECT_EQ(s.reason(), StopReason::kReset);
}

}  // namespace
}  // namespace husk
