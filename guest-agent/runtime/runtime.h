// The containers of one sandbox and their processes: what the gRPC service calls. Methods
// return grpc::Status with a code and a message a person can act on.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "guest-agent/oci/seccomp.h"
#include "guest-agent/oci/spec.h"
#include "guest-agent/runtime/cgroup.h"
#include "guest-agent/runtime/launcher.h"
#include "guest-agent/runtime/process.h"
#include "proto/agent.pb.h"

namespace husk::agent {

struct RuntimeOptions {
  std::string state_dir = "/run/husk-agent";  // mounts made for containers live under here
  std::string cgroup_parent = "/husk";         // default cgroup: <parent>/<id>
  bool missing_controllers_ok = false;         // see Cgroup::create
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions opts);
  ~Runtime();

  grpc::Status create(const v1::CreateContainerRequest& req, int* pid);
  grpc::Status start(const std::string& id);
  grpc::Status exec(const v1::ExecProcessRequest& req, int* pid);
  grpc::Status signal(const v1::SignalProcessRequest& req);
  grpc::Status wait(const v1::ProcessRequest& req, grpc::ServerContext* ctx, v1::WaitProcessResponse* out);
  grpc::Status remove(const v1::RemoveContainerRequest& req);
  grpc::Status pause(const std::string& id, bool frozen);
  grpc::Status update(const v1::UpdateContainerRequest& req);
  grpc::Status stats(const std::string& id, v1::ContainerStats* out);
  grpc::Status list_processes(const std::string& id, v1::ListProcessesResponse* out);
  grpc::Status state(const std::string& id, v1::ContainerState* out);
  // Finds a process for I/O calls.
  grpc::Status find_process(const std::string& cid, const std::string& eid, std::shared_ptr<Process>* out);
  // Kills and removes every container (sandbox teardown).
  void destroy_all();

  // From the reaper thread.
  void on_exit(pid_t pid, int status);

  // OOM events: each subscriber gets its own queue.
  struct OomQueue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<v1::OomEvent> events;
    bool closed = false;  // the agent is shutting down: end the stream now
  };
  std::shared_ptr<OomQueue> subscribe_oom();
  void unsubscribe_oom(const std::shared_ptr<OomQueue>& q);
  // Ends every OOM stream, so a server shutdown does not wait for their clients.
  void close_oom_subscribers();

 private:
  struct Container;
  std::shared_ptr<Container> find(const std::string& id);
  grpc::Status setup_stdio(v1::StdioMode mode, bool terminal, const oci::Process& p, LaunchPlan* plan,
                           std::vector<UniqueFd>* child_ends, std::function<void(Process&)>* attach);
  grpc::Status resolve_rootfs(const v1::CreateContainerRequest& req, const oci::Spec& spec, Container& c);
  void track(const std::shared_ptr<Process>& p);
  void oom_loop();
  void watch_oom(Container& c);

  RuntimeOptions opts_;
  std::mutex mu_;  // containers_, by_pid_, unclaimed_
  std::map<std::string, std::shared_ptr<Container>> containers_;
  std::map<pid_t, std::shared_ptr<Process>> by_pid_;
  std::map<pid_t, int> unclaimed_;  // exits reaped before their launch returned
  std::deque<pid_t> unclaimed_order_;

  std::mutex oom_mu_;
  std::vector<std::shared_ptr<OomQueue>> oom_subscribers_;
  UniqueFd inotify_;
  UniqueFd oom_wake_;
  std::map<int, std::string> oom_watches_;  // inotify wd → container id
  std::thread oom_thread_;
};

}  // namespace husk::agent
