// The containers of one sandbox and their processes: what the gRPC service calls, in plain terms
// (no protos in; container stats out as the agent API's message). Errors are husk::Error with a
// code and a message a person can act on; the service maps them to gRPC statuses.
#pragma once

#include <time.h>

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
  bool isolate_from_agent = false;             // guest: new mount and pid namespaces for every container
  // create/exec check the whole request (ids, config.json, rootfs source, seccomp program) and
  // stop before touching the machine: the request fuzzer drives every handler this way.
  bool dry_run = false;
};

enum class Stdio { kNull, kStream };  // nothing attached, or the agent pumps it for clients

// Where a container's root is: a path, a virtio-fs share (tag) or a block device, and a subpath
// inside it. Nothing set: config.json's root.path (absolute).
struct RootfsSource {
  std::string path;
  std::string virtiofs_tag;
  std::string block_device, fstype;
  std::string subpath;
  std::vector<std::string> options;
};

struct CreateRequest {
  std::string id;
  std::string config_json;
  RootfsSource rootfs;
  Stdio stdio = Stdio::kNull;
};

struct ExecRequest {
  std::string container_id, exec_id;
  std::string process_json;  // an OCI Process
  Stdio stdio = Stdio::kNull;
};

struct Exit {
  int status = 0;  // exit code, or 128 + signal
  timespec at{};
};

struct ProcessInfo {
  pid_t pid;
  std::string exec_id;  // "" unless it is an exec's
};

struct ContainerStatus {
  enum State { kCreated, kRunning, kPaused, kStopped } state = kCreated;
  pid_t pid = 0;
  Exit exit;  // when stopped
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions opts);
  ~Runtime();

  // Creates a container (stopped before its first instruction until start); its init's pid.
  Result<int> create(const CreateRequest& req);
  Status start(const std::string& id);
  Result<int> exec(const ExecRequest& req);
  // One process, or (`all`) every process in the container's cgroup.
  Status signal(const std::string& cid, const std::string& eid, int sig, bool all);
  // Blocks until the process exited and its output was delivered, or `cancelled` says stop.
  Result<Exit> wait(const std::string& cid, const std::string& eid, const std::function<bool()>& cancelled);
  Status remove(const std::string& id, bool force);
  Status pause(const std::string& id, bool frozen);
  Status update(const std::string& id, const std::string& resources_json);
  Result<v1::ContainerStats> stats(const std::string& id);
  Result<std::vector<ProcessInfo>> list_processes(const std::string& id);
  Result<ContainerStatus> state(const std::string& id);
  // A process for I/O calls.
  Result<std::shared_ptr<Process>> find_process(const std::string& cid, const std::string& eid);
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
  // `container_root` (an exec's): a terminal comes from that root's own devpts when it has one.
  Status setup_stdio(Stdio mode, bool terminal, const oci::Process& p, int container_root, LaunchPlan* plan,
                     std::vector<UniqueFd>* child_ends, std::function<void(Process&)>* attach);
  static Result<std::string> check_rootfs(const RootfsSource& r, const oci::Spec& spec);
  Status resolve_rootfs(const RootfsSource& r, const oci::Spec& spec, Container& c);
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
