// containerd.task.v2.Task for one sandbox (a pod: every container whose config names the same
// io.kubernetes.cri.sandbox-id, or a lone container), on top of husk-agent. The first Create
// boots the sandbox; later ones join it; the last Delete stops it. Each call becomes agent RPCs;
// what containerd asks about (status, exit codes, stdio paths) is kept here (shim/process.h);
// events go out in containerd's order (create → start → exit → delete; exec-added →
// exec-started → exit); output reaches containerd's FIFOs before the TaskExit event.
//
// Concurrency: every call runs on a thread of its own. mu_ guards tasks_ and the current
// sandbox handle (sandbox_, agent_) and is held only to look up or publish; a call copies the
// shared_ptrs it needs under mu_ and makes its agent calls without it, so a slow Create never
// holds up State or Kill of another container, and a call racing the last Delete works on a
// sandbox that stays alive until it is done (its agent calls then fail cleanly). lifecycle_mu_
// serializes booting and stopping the sandbox, which are slow, without holding mu_.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proto/agent.grpc.pb.h"
#include "shim/bundle.h"
#include "shim/config.h"
#include "shim/events.h"
#include "shim/process.h"
#include "shim/sandbox.h"
#include "shim/ttrpc/server.h"

namespace husk::shim {

class TaskService {
 public:
  // Makes (does not start) the sandbox for a container's bundle; tests give a fake one.
  using SandboxFactory = std::function<Result<std::shared_ptr<Sandbox>>(const Config&, const std::string& dir)>;
  // Agent calls without a deadline from containerd get this one (Wait has none: a process may
  // run for ever).
  static constexpr std::chrono::seconds kAgentCallTimeout{60};

  TaskService(std::string ns, std::string sandbox_id, EventSink* events, std::function<void()> shutdown,
              SandboxFactory factory = default_factory());
  ~TaskService();
  // containerd's Task service: method name → handler. register_with puts them on a server
  // (inline, so this library does not need the server's code: the fuzzer calls handlers()).
  std::map<std::string, ttrpc::Handler> handlers();
  void register_with(ttrpc::Server& server) {
    for (auto& [method, h] : handlers()) server.register_method(kServiceName, method, h);
  }
  static constexpr const char* kServiceName = "containerd.task.v2.Task";

  static SandboxFactory default_factory();

 private:
  using Reply = ttrpc::Reply;
  struct Task {
    std::string bundle;
    bool ready = false;     // Create finished: visible to the other calls
    bool attached = false;  // its root is attached in the sandbox (to detach on delete)
    std::map<std::string, std::shared_ptr<Process>> procs;  // "" = the container's init
  };
  // What one call works with, copied under mu_.
  struct Call {
    std::shared_ptr<Process> proc;
    std::shared_ptr<AgentStub> agent;
    std::shared_ptr<Sandbox> sandbox;
  };

  Reply create(const std::string& payload, const ttrpc::CallContext& cc);
  Reply start(const std::string& payload, const ttrpc::CallContext& cc);
  Reply state(const std::string& payload, const ttrpc::CallContext& cc);
  Reply wait(const std::string& payload, const ttrpc::CallContext& cc);
  Reply kill(const std::string& payload, const ttrpc::CallContext& cc);
  Reply del(const std::string& payload, const ttrpc::CallContext& cc);
  Reply exec(const std::string& payload, const ttrpc::CallContext& cc);
  Reply pids(const std::string& payload, const ttrpc::CallContext& cc);
  Reply stats(const std::string& payload, const ttrpc::CallContext& cc);
  Reply pause(const std::string& payload, const ttrpc::CallContext& cc, bool frozen);
  Reply resize_pty(const std::string& payload, const ttrpc::CallContext& cc);
  Reply close_io(const std::string& payload, const ttrpc::CallContext& cc);
  Reply update(const std::string& payload, const ttrpc::CallContext& cc);
  Reply connect(const std::string& payload, const ttrpc::CallContext& cc);
  Reply shutdown(const std::string& payload, const ttrpc::CallContext& cc);

  // Finds task `id`'s process `exec_id` ("" = init) and the sandbox it runs in.
  Result<Call> find(const std::string& id, const std::string& exec_id);
  // Every call's prologue: parse the request, find the process it names.
  template <class Req>
  Result<Call> begin_call(const std::string& payload, Req* req) {
    if (!req->ParseFromString(payload)) return make_error(ErrorCode::kInvalidArgument, "request does not parse");
    std::string exec_id;
    if constexpr (requires { req->exec_id(); }) exec_id = req->exec_id();
    return find(req->id(), exec_id);
  }

  // The sandbox, booted for the first container (under lifecycle_mu_).
  Result<Call> sandbox_for(const google::protobuf::Any& options, const Bundle& bundle);
  // Removes task `id` from tasks_ and, if it was the last, stops the sandbox.
  void forget_task(const std::string& id, bool detach);
  void stop_sandbox_if_unused();
  void watch_oom(std::shared_ptr<AgentStub> agent);
  void on_exit(Process& p, Process::Exit e);
  void teardown();

  const std::string ns_, sandbox_id_;
  EventSink* const events_;
  const std::function<void()> shutdown_;
  const SandboxFactory factory_;

  std::mutex lifecycle_mu_;  // booting and stopping the sandbox; taken before mu_, never inside it
  std::mutex mu_;            // tasks_, sandbox_, agent_, oom_ctx_
  std::map<std::string, Task> tasks_;
  std::shared_ptr<Sandbox> sandbox_;
  std::shared_ptr<AgentStub> agent_;
  std::shared_ptr<grpc::ClientContext> oom_ctx_;
  std::thread oom_;  // only touched under lifecycle_mu_
};

}  // namespace husk::shim
