// Where a sandbox's agent runs. VmSandbox: virtiofsd exporting the bundle directory, husk-vmm
// booting the agent initramfs, the agent reached over the VMM's hybrid vsock socket.
// HostSandbox: husk-agent as a host process on a unix socket in the bundle. Both stop every
// helper they started (SIGKILL after a grace period) and record pids in the bundle so a
// `delete` after a crash can still clean up.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "proto/agent.pb.h"
#include "shim/config.h"

namespace husk::shim {

class Sandbox {
 public:
  virtual ~Sandbox() = default;
  virtual Status start() = 0;
  virtual std::shared_ptr<grpc::Channel> channel() const = 0;
  // How the agent finds a container's root prepared at <bundle>/rootfs on the host.
  virtual agent::v1::Rootfs rootfs() const = 0;
  virtual void stop() = 0;
  // Processes to kill if the shim dies before stop(): one pid per line in <bundle>/husk-pids.
  static void kill_recorded(const std::string& bundle);
};

std::unique_ptr<Sandbox> make_sandbox(const Config& c, const std::string& bundle, const std::string& id);

}  // namespace husk::shim
