// Collects every child that exits: the agent is PID 1 in a guest (or a subreaper on a host),
// so orphans of every container land here too. SIGCHLD is blocked in all threads (block() runs
// in main before any thread exists) and taken synchronously by one thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <atomic>
#include <thread>

namespace husk::agent {

class Reaper {
 public:
  using OnExit = std::function<void(pid_t pid, int wait_status)>;
  // Call first thing in main: threads inherit the blocked mask.
  static void block_sigchld();
  explicit Reaper(OnExit on_exit);
  ~Reaper();

 private:
  void run();
  OnExit on_exit_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace husk::agent
