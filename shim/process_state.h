// The lifecycle containerd expects of every task process (a container's init or an exec),
// kept in the shim so containerd gets runc's answers without asking the agent:
//
//   created ──Start──▶ running ──Pause──▶ paused        exited() from any live state → stopped
//      │                  ▲ ◀──Resume──────┘            Delete from created/stopped → deleted
//      └──────────────────┴─────── exit ──▶ stopped ──Delete──▶ deleted
//
// Refusals carry runc's wording ("cannot start a running process") as FailedPrecondition.
#pragma once

#include <ctime>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace husk::shim {

class ProcessState {
 public:
  enum class Status { kCreated, kRunning, kPaused, kStopped, kDeleted };

  Status status() const { return status_; }
  uint32_t exit_status() const { return exit_status_; }
  const timespec& exited_at() const { return exited_at_; }
  bool live() const { return status_ == Status::kRunning || status_ == Status::kPaused; }

  Result<void> start();
  Result<void> pause();
  Result<void> resume();
  // Exec into this (init) process's container.
  Result<void> check_exec() const;
  Result<void> remove();
  // The process is gone; the first exit wins (a late duplicate does not rewrite the status).
  void exited(uint32_t status, timespec at);

  static const char* name(Status s);

 private:
  Error refuse(const char* verb) const;
  Status status_ = Status::kCreated;
  uint32_t exit_status_ = 0;
  timespec exited_at_{};
};

}  // namespace husk::shim
