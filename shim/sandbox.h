// Where a sandbox's agent runs, shared by every container of a pod. VmSandbox: virtiofsd
// exporting the sandbox's share (shim/share.h: container roots attached under it after the VM
// booted appear in the guest, and the guest can write nothing the shim acts on), husk-vmm
// booting the agent initramfs, the agent reached over the VMM's hybrid vsock socket.
// HostSandbox: husk-agent as a host process on <dir>/agent.sock, roots on <bundle>/rootfs. Both stop every helper they started (SIGKILL
// after a grace period) and record pids in <dir>/husk-pids so a `delete` after a shim crash
// can still clean up.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "proto/agent.pb.h"
#include "shim/bundle.h"
#include "shim/config.h"
#include "shim/rootfs.h"

namespace husk::shim {

class Sandbox {
 public:
  virtual ~Sandbox();
  // Starts the helpers and connects to the agent; on failure stop() undoes what started.
  virtual Status start() = 0;
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // Attaches container `id`'s root (containerd's mounts, or a bind of its root directory)
  // where the agent will find it; read-only on the host when `readonly`, with `mountpoints`
  // made in it first.
  virtual Status attach_rootfs(const std::string& id, const std::string& bundle, const std::vector<RootfsMount>& mounts,
                               bool readonly, const std::vector<MountPoint>& mountpoints) = 0;
  virtual void detach_rootfs(const std::string& id, const std::string& bundle) = 0;
  // How the agent finds that root.
  virtual agent::v1::Rootfs rootfs(const std::string& id, const std::string& bundle) const = 0;
  // config.json as this sandbox's agent needs it for container `id` (after attach_rootfs).
  virtual Result<std::string> guest_config(const std::string& id, const Bundle& b) {
    (void)id;
    return b.config_json;
  }
  // Drops the agent connection, stops the helpers (newest first: the VMM before the virtiofsd
  // it uses; SIGTERM, then SIGKILL after a grace period) and removes the directory.
  virtual void stop();
  const std::string& dir() const { return dir_; }
  // Empty while every helper runs; else which one ended and how ("husk-vmm (pid 12) was killed
  // by SIGSYS: ..."): why the agent went away under the containers.
  std::string failure();
  // How long start()'s phases took ("virtiofsd 2.1 ms, vmm 4.0 ms, boot+agent 812.3 ms"),
  // for the shim's debug log and bench/shim_start.sh.
  const std::string& timings() const { return timings_; }

  // The state directory of sandbox `sandbox_id` in namespace `ns` under `root`: short (sockets
  // live in it) whatever the ids' length.
  static std::string dir_for(const std::string& root, const std::string& ns, const std::string& sandbox_id);
  // After a shim died: kill the recorded helpers, unmount container `id`'s root, remove what is
  // left of the sandbox directory once no container root is mounted in it.
  static void cleanup_after_crash(const std::string& bundle, const std::string& id);
  // Records in the bundle which sandbox directory the container belongs to.
  static void write_pointer(const std::string& bundle, const std::string& dir);

 protected:
  Sandbox(Config c, std::string dir) : c_(std::move(c)), dir_(std::move(dir)) {}
  // Records a started helper (also in <dir>/husk-pids, for `delete` after a crash).
  void add_helper(pid_t pid, const char* name);
  // Removes the directory (what the shim made in it) unless a container root is still there.
  static void remove_dir(const std::string& dir);
  void stop_helpers();
  void phase(const char* name);  // ends a timed phase of start()
  Config c_;
  std::string dir_;
  std::shared_ptr<grpc::Channel> channel_;
  struct Helper {
    pid_t pid;
    std::string name;
    bool exited = false;
    int status = 0;   // waitpid's, once it ended
    std::string how;  // how it ended, once it did
  };
  std::mutex helpers_mu_;
  std::vector<Helper> helpers_;
  std::string timings_;
  std::chrono::steady_clock::time_point mark_ = std::chrono::steady_clock::now();
};

// 16 hex digits naming `key` (FNV-1a): socket and directory names of a fixed, short length
// whatever the ids' length, since unix socket paths are limited to 107 bytes.
std::string short_hash(const std::string& key);

// `husk template create`: makes the template a "start": "template" sandbox of `c` with `nics`
// pod interfaces restores (shim/templates.h), as the first such sandbox would; true when it was
// made, false when it was there already.
Result<bool> create_template(const Config& c, unsigned nics);

// Creates the sandbox's directory (and state_dir), both 0700.
Result<std::unique_ptr<Sandbox>> make_sandbox(const Config& c, const std::string& dir);

}  // namespace husk::shim
