#include "shim/process_state.h"

namespace husk::shim {

const char* ProcessState::name(Status s) {
  switch (s) {
    case Status::kCreated: return "created";
    case Status::kRunning: return "running";
    case Status::kPaused: return "paused";
    case Status::kStopped: return "stopped";
    case Status::kDeleted: return "deleted";
  }
  return "unknown";
}

Error ProcessState::refuse(const char* verb) const { return make_error(ErrorCode::kFailedPrecondition, "cannot %s a %s process", verb, name(status_)); }

Result<void> ProcessState::start() {
  if (status_ != Status::kCreated) return refuse("start");
  status_ = Status::kRunning;
  return {};
}

Result<void> ProcessState::pause() {
  if (status_ != Status::kRunning) return refuse("pause");
  status_ = Status::kPaused;
  return {};
}

Result<void> ProcessState::resume() {
  if (status_ != Status::kPaused) return refuse("resume");
  status_ = Status::kRunning;
  return {};
}

Result<void> ProcessState::check_exec() const {
  // runc allows exec into a created container (its init is waiting in runc init) but not into
  // a frozen or finished one.
  if (status_ != Status::kCreated && status_ != Status::kRunning) return make_error(ErrorCode::kFailedPrecondition, "cannot exec in a %s state", name(status_));
  return {};
}

Result<void> ProcessState::remove() {
  if (status_ != Status::kCreated && status_ != Status::kStopped) return refuse("delete");
  status_ = Status::kDeleted;
  return {};
}

void ProcessState::exited(uint32_t status, timespec at) {
  if (status_ == Status::kStopped || status_ == Status::kDeleted) return;
  status_ = Status::kStopped;
  exit_status_ = status;
  exited_at_ = at;
}

}  // namespace husk::shim
