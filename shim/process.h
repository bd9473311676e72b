// One process of a task (a container's init or an exec) as the shim sees it: what containerd
// asked for (stdio FIFO paths, terminal, an exec's OCI Process), its lifecycle (ProcessState,
// runc's answers), and the threads that copy its stdio between containerd's FIFOs and the agent
// and that wait for its exit. The agent stub a thread uses is a shared_ptr it holds: if the
// sandbox stops meanwhile, calls on it fail; nothing is used after it was freed.
#pragma once

#include <time.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "proto/agent.grpc.pb.h"
#include "shim/process_state.h"

namespace husk::shim {

using AgentStub = agent::v1::Agent::Stub;

class Process : public std::enable_shared_from_this<Process> {
 public:
  struct Spec {
    std::string container_id, exec_id;  // exec_id "" for the container's init
    std::string bundle;
    std::string stdin_path, stdout_path, stderr_path;
    bool terminal = false;
    std::string process_json;  // an exec's OCI Process
  };
  struct Exit {
    uint32_t status = 0;
    timespec at{};
    bool agent_lost = false;  // no answer from the agent: status is our 255, not the process's
  };

  explicit Process(Spec spec) : spec_(std::move(spec)) {}
  ~Process();  // cancels the streams and joins the threads (detaches the one it runs on)
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  const Spec& spec() const { return spec_; }
  // How containerd names it: the exec id, or the container id for an init.
  std::string name() const { return spec_.exec_id.empty() ? spec_.container_id : spec_.exec_id; }
  bool has_stdio() const { return !spec_.stdin_path.empty() || !spec_.stdout_path.empty() || !spec_.stderr_path.empty(); }
  agent::v1::ProcessRequest request() const;

  uint32_t pid() const;
  void set_pid(uint32_t pid);
  // The lifecycle, under this process's lock: `f` gets the state and returns what it decides.
  template <class F>
  auto with_state(F&& f) {
    std::lock_guard lk(mu_);
    return f(st_);
  }
  // A transition that happens only after the agent did the work: checked on a copy first.
  Status check(const std::function<Status(ProcessState&)>& transition);

  // containerd's output FIFOs fed from the agent's streams, its stdin FIFO into the agent.
  void start_io(std::shared_ptr<AgentStub> agent);
  // Waits for the exit in the agent (no deadline: a process may run for ever), lets the output
  // copies finish so every byte is in the FIFOs, records the exit (255 if the agent could not
  // say), then calls `on_exit` — before anyone waiting in wait_exit() hears of it. The thread
  // keeps the process alive until it is done. The process must be owned by a shared_ptr.
  void start_waiter(std::shared_ptr<AgentStub> agent, std::function<void(Process&, Exit)> on_exit);
  // Blocks until the process stopped (or was deleted); returns its exit.
  Exit wait_exit();
  // Wakes wait_exit() callers after a Delete of a process that never ran.
  void notify_deleted();
  // Ends the stdin copy (containerd keeps the FIFO open until the process is deleted).
  void cancel_stdin();

 private:
  const Spec spec_;
  mutable std::mutex mu_;  // pid_, st_, the contexts below
  std::condition_variable cv_;
  uint32_t pid_ = 0;
  ProcessState st_;
  bool exit_reported_ = false;  // on_exit has run: wait_exit may answer
  std::thread out_, err_, waiter_;
  std::shared_ptr<grpc::ClientContext> out_ctx_, err_ctx_, in_ctx_, wait_ctx_;
};

}  // namespace husk::shim
