// Why the VM stopped, decided once: the first reason reported wins (a guest that panics and
// then resets is a panic; a reset after a host signal is the signal).
#pragma once

#include <functional>
#include <mutex>
#include <string>

namespace husk {

enum class StopReason { kNone, kReset, kPowerOff, kGuestPanic, kTripleFault, kVmError, kSignal };

class StopState {
 public:
  // `notify` runs (once, on the reporting thread) when the first reason arrives.
  void set_notify(std::function<void()> notify);
  void request(StopReason reason, std::string detail = {});
  bool requested() const;
  StopReason reason() const;
  std::string detail() const;
  // The console saw a kernel panic: a following reset counts as a panic.
  void note_panic();

 private:
  mutable std::mutex mu_;
  StopReason reason_ = StopReason::kNone;
  std::string detail_;
  bool panic_seen_ = false;
  std::function<void()> notify_;
};

// husk-vmm's exit status for each reason (documented in the README).
int exit_status(StopReason reason, int signal_number);

}  // namespace husk
