// A ttrpc server on Boost.Asio (no C++ ttrpc library exists). Connections are read on the
// io_context's thread; each request runs on a thread of its own (a Wait may block for the
// life of a container while State and Kill arrive on the same connection), and its response is
// written back through the io_context, one frame at a time, in whatever order requests finish.
// Protocol errors answer on the offending stream: even or zero stream ids → InvalidArgument,
// data over 4 MiB → ResourceExhausted (the data is read and dropped), unparsable requests →
// InvalidArgument, unknown services or methods → Unimplemented.
#pragma once

#include <atomic>
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"
#include "shim/ttrpc/frame.h"

namespace husk::ttrpc {

struct Reply {
  int32_t code = kOk;
  std::string message;  // for errors
  std::string payload;  // serialized response message when code == kOk
  static Reply ok(std::string payload) { return Reply{kOk, {}, std::move(payload)}; }
  static Reply error(int32_t code, std::string message) { return Reply{code, std::move(message), {}}; }
};

struct CallContext {
  std::string service, method;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::map<std::string, std::string> metadata;
};

using Handler = std::function<Reply(const std::string& payload, const CallContext& ctx)>;

class Server {
 public:
  explicit Server(boost::asio::io_context& io) : io_(io), acceptor_(io) {}
  ~Server();

  void register_method(const std::string& service, const std::string& method, Handler h);
  // Binds (removing a stale socket file) and listens on a unix socket path.
  Status listen(const std::string& path);
  // Takes an already listening socket (the shim's `start` binds before it daemonizes).
  Status adopt(int listening_fd);
  void start();
  // Stops accepting, closes connections, and waits for running handlers.
  void stop();
  size_t connections() const { return connections_.load(); }

 private:
  class Connection;
  void accept();
  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::map<std::string, Handler> handlers_;  // "service/method"
  std::atomic<size_t> connections_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  size_t running_ = 0;  // handler threads alive
  std::vector<std::weak_ptr<Connection>> open_;
  bool stopped_ = false;
};

}  // namespace husk::ttrpc
