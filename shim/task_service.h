// containerd.task.v2.Task for one sandbox (a pod: every container whose config names the same
// io.kubernetes.cri.sandbox-id, or a lone container), on top of husk-agent. The first Create
// boots the sandbox; later ones join it; the last Delete stops it. Each call becomes agent RPCs;
// what containerd asks about (status, exit codes, stdio paths) is kept here; events go out
// through the Publisher in containerd's order (create → start → exit → delete; exec-added →
// exec-started → exit); output reaches containerd's FIFOs before the TaskExit event.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proto/agent.grpc.pb.h"
#include "shim/config.h"
#include "shim/events.h"
#include "shim/process_state.h"
#include "shim/sandbox.h"
#include "shim/ttrpc/server.h"

namespace husk::shim {

class TaskService {
 public:
  TaskService(std::string ns, std::string sandbox_id, Publisher* events, std::function<void()> shutdown);
  ~TaskService();
  void register_with(ttrpc::Server& server);

 private:
  struct Proc;
  struct Task {
    std::string bundle;
    std::string rootfs;     // host directory for the container's root (the sandbox names it)
    bool mounted = false;   // whether containerd's mounts (or a bind of root.path) are on it
    std::map<std::string, std::shared_ptr<Proc>> procs;  // "" = the container's init
  };

  ttrpc::Reply create(const std::string& payload);
  ttrpc::Reply start(const std::string& payload);
  ttrpc::Reply state(const std::string& payload);
  ttrpc::Reply wait(const std::string& payload);
  ttrpc::Reply kill(const std::string& payload);
  ttrpc::Reply del(const std::string& payload);
  ttrpc::Reply exec(const std::string& payload);
  ttrpc::Reply pids(const std::string& payload);
  ttrpc::Reply stats(const std::string& payload);
  ttrpc::Reply pause(const std::string& payload, bool frozen);
  ttrpc::Reply resize_pty(const std::string& payload);
  ttrpc::Reply close_io(const std::string& payload);
  ttrpc::Reply update(const std::string& payload);
  ttrpc::Reply connect(const std::string& payload);
  ttrpc::Reply shutdown(const std::string& payload);

  std::shared_ptr<Proc> find(const std::string& id, const std::string& exec_id, ttrpc::Reply* err);
  // Every call's prologue: parse the request, find the task's process (the exec, for requests
  // that name one). False with *err set when either fails.
  template <class Req>
  bool begin_call(const std::string& payload, Req* req, std::shared_ptr<Proc>* p, ttrpc::Reply* err) {
    if (!req->ParseFromString(payload)) {
      *err = ttrpc::Reply::error(ttrpc::kInvalidArgument, "request does not parse");
      return false;
    }
    std::string exec_id;
    if constexpr (requires { req->exec_id(); }) exec_id = req->exec_id();
    *p = find(req->id(), exec_id, err);
    return *p != nullptr;
  }
  // Boots the sandbox for the first container; mu_ held.
  Status start_sandbox(const google::protobuf::Any& options, const nlohmann::json& spec);
  void start_io(const std::shared_ptr<Proc>& p);
  void start_waiter(const std::shared_ptr<Proc>& p);
  void watch_oom();
  // Unmounts a task's root; mu_ held.
  static void release_rootfs(Task& t);
  // A Create that failed part way: undo its mount, and the sandbox if it was booted for it and
  // nothing else joined. mu_ held.
  ttrpc::Reply abandon(Task& t, bool first, ttrpc::Reply r);
  // mu_ held.
  void stop_sandbox();
  // Stops the sandbox with whatever still runs in it.
  void teardown();

  std::string ns_, sandbox_id_;
  Publisher* events_;
  std::function<void()> shutdown_;
  std::mutex mu_;
  std::unique_ptr<Sandbox> sandbox_;
  std::shared_ptr<agent::v1::Agent::Stub> agent_;
  std::map<std::string, Task> tasks_;
  std::thread oom_;
  std::shared_ptr<grpc::ClientContext> oom_ctx_;
};

}  // namespace husk::shim
