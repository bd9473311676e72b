// Connecting to husk-agent from the host side (husk-agentctl, the shim).
//   unix:PATH          an agent in host mode
//   hvsock:PATH:PORT   a guest agent behind husk-vmm's (Firecracker-style) hybrid vsock socket:
//                      connect to PATH, send "CONNECT PORT\n", expect "OK ...\n"
//   vsock:CID:PORT     a guest behind a kernel vsock transport (vhost-vsock)
// Retries until `timeout` (a booting guest's agent is not listening yet), and proves each fresh
// connection with a first call: Health, or the caller's own probe when it has a first call to
// make anyway (one round trip fewer; a restored sandbox's Restored).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"

namespace husk::agent_client {

// A first call on `channel` with `ctx` (its deadline set): not OK means try a fresh connection.
using Probe = std::function<grpc::Status(const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext& ctx)>;

Result<std::shared_ptr<grpc::Channel>> connect(const std::string& address, std::chrono::milliseconds timeout,
                                               const Probe& probe = {});

// A process's first gRPC channel initializes the library (its threads, executors, plugins):
// milliseconds natively, but a quarter of a restored sandbox's start in the emulated test host.
// A caller that will connect later makes one of these first: it pays for that on a thread of its
// own while the caller waits for something else (the VM), and keeps gRPC initialized while it
// lives, so the real connect does not start over.
class WarmUp {
 public:
  WarmUp();
  ~WarmUp();
  WarmUp(const WarmUp&) = delete;
  WarmUp& operator=(const WarmUp&) = delete;

 private:
  std::thread thread_;
};

}  // namespace husk::agent_client
