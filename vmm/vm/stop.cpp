#include "vmm/vm/stop.h"

#include "common/log.h"

namespace husk {

void StopState::set_notify(std::function<void()> notify) {
  std::lock_guard g(mu_);
  notify_ = std::move(notify);
}

void StopState::request(StopReason reason, std::string detail) {
  std::function<void()> notify;
  {
    std::lock_guard g(mu_);
    if (reason_ != StopReason::kNone) return;
    if (panic_seen_ && (reason == StopReason::kReset || reason == StopReason::kPowerOff))
      reason = StopReason::kGuestPanic;
    LOG_DEBUG("stop requested (reason %d): %s", static_cast<int>(reason), detail.c_str());
    reason_ = reason;
    detail_ = std::move(detail);
    notify = notify_;
  }
  if (notify) notify();
}

bool StopState::requested() const {
  std::lock_guard g(mu_);
  return reason_ != StopReason::kNone;
}

StopReason StopState::reason() const {
  std::lock_guard g(mu_);
  return reason_;
}

std::string StopState::detail() const {
  std::lock_guard g(mu_);
  return detail_;
}

void StopState::note_panic() {
  std::lock_guard g(mu_);
  panic_seen_ = true;
}

int exit_status(StopReason reason, int signal_number) {
  switch (reason) {
    case StopReason::kReset:
    case StopReason::kPowerOff: return 0;
    case StopReason::kGuestPanic: return 2;
    case StopReason::kTripleFault: return 3;
    case StopReason::kVmError: return 4;
    case StopReason::kSignal: return 128 + signal_number;
    case StopReason::kNone: break;
  }
  return 4;
}

}  // namespace husk
