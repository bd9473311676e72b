// A blocking ttrpc client over a unix socket: any number of threads may call at once; a reader
// thread hands each response to the call waiting on its stream id. The shim uses it to
// publish events to containerd; tests use it against the server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/result.h"
#include "common/unique_fd.h"
#include "shim/ttrpc/server.h"

namespace husk::ttrpc {

class Client {
 public:
  static Result<std::unique_ptr<Client>> connect(const std::string& path);
  ~Client();
  // The reply (code, message, payload); an Error only when the connection failed or timed out.
  Result<Reply> call(const std::string& service, const std::string& method, const std::string& payload,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  explicit Client(UniqueFd fd);
  void read_loop();
  UniqueFd fd_;
  std::mutex write_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint32_t, std::optional<Reply>> pending_;
  uint32_t next_id_ = 1;
  bool closed_ = false;
  std::thread reader_;
};

}  // namespace husk::ttrpc
