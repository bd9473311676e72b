// Connecting to husk-agent from the host side (husk-agentctl, the shim).
//   unix:PATH          an agent in host mode
//   hvsock:PATH:PORT   a guest agent behind husk-vmm's (Firecracker-style) hybrid vsock socket:
//                      connect to PATH, send "CONNECT PORT\n", expect "OK ...\n"
//   vsock:CID:PORT     a guest behind a kernel vsock transport (vhost-vsock)
// Retries until `timeout` (a booting guest's agent is not listening yet), then proves the
// connection with a Health call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"

namespace husk::agent_client {

Result<std::shared_ptr<grpc::Channel>> connect(const std::string& address, std::chrono::milliseconds timeout);

}  // namespace husk::agent_client
