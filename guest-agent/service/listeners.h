// Where the agent listens. gRPC 1.51 has no vsock scheme, and its server-side "channel from
// fd" never polls such a channel under the synchronous server (a Health call over one times
// out; see README). So the agent serves gRPC on a unix socket only, and vsock connections are
// accepted here and relayed to it byte for byte, one thread per connection.
//
// Only the host may talk to the agent: a connection whose peer is not CID 2 (a container
// dialling the guest's own CID, or CID 1 where a kernel has loopback) is closed at once, and at
// most kMaxRelays connections are relayed at a time, so a flood cannot exhaust PID 1's threads.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk::agent {

class VsockBridge {
 public:
  static constexpr int kMaxRelays = 32;
  // `peer_cid`: the only CID accepted (the host, 2; a test may name another).
  static Result<std::unique_ptr<VsockBridge>> listen(unsigned port, std::string unix_path, unsigned peer_cid = 2);
  void serve();
  ~VsockBridge();

 private:
  VsockBridge(UniqueFd fd, std::string unix_path, unsigned peer_cid)
      : fd_(std::move(fd)), unix_path_(std::move(unix_path)), peer_cid_(peer_cid) {}
  UniqueFd fd_;
  std::string unix_path_;
  unsigned peer_cid_;
  std::atomic<bool> stop_{false};
  std::shared_ptr<std::atomic<int>> relays_ = std::make_shared<std::atomic<int>>(0);
  std::thread thread_;
};

// Copies bytes both ways between two sockets until both directions are closed.
void relay_streams(UniqueFd a, UniqueFd b);

}  // namespace husk::agent
