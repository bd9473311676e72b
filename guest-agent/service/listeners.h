// Where the agent listens. gRPC 1.51 has no vsock scheme, and its server-side "channel from
// fd" never polls such a channel under the synchronous server (a Health call over one times
// out; see README). So the agent serves gRPC on a unix socket only, and vsock connections are
// accepted here and relayed to it byte for byte, one thread per connection.
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
  static Result<std::unique_ptr<VsockBridge>> listen(unsigned port, std::string unix_path);
  void serve();
  ~VsockBridge();

 private:
  VsockBridge(UniqueFd fd, std::string unix_path) : fd_(std::move(fd)), unix_path_(std::move(unix_path)) {}
  void relay(UniqueFd client);
  UniqueFd fd_;
  std::string unix_path_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace husk::agent
