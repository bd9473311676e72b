// Where the agent listens. gRPC 1.51 has no vsock scheme, so vsock connections are accepted
// here and handed to the server one fd at a time; unix sockets use gRPC's own listener.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <string>
#include <thread>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk::agent {

class VsockListener {
 public:
  static Result<std::unique_ptr<VsockListener>> listen(unsigned port);
  // Starts accepting; each connection becomes a channel of `server`.
  void serve(grpc::Server* server);
  ~VsockListener();

 private:
  explicit VsockListener(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace husk::agent
