#include "shim/ttrpc/server.h"

#include <fcntl.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>

#include "common/log.h"
#include "proto/ttrpc.pb.h"

namespace husk::ttrpc {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

class Server::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server& server, local::socket sock) : server_(server), sock_(std::move(sock)) {}

  asio::awaitable<void> read_loop() {
    auto self = shared_from_this();
    for (;;) {
      uint8_t hdr[kHeaderSize];
      co_await asio::async_read(sock_, asio::buffer(hdr), asio::use_awaitable);
      FrameHeader h = decode_header(hdr);
      if (h.length > kMaxData) {
        // Read and drop the oversized data so the stream stays in sync, then answer.
        std::vector<char> sink(64 << 10);
        for (uint32_t left = h.length; left > 0;) {
          size_t n = std::min<size_t>(left, sink.size());
          co_await asio::async_read(sock_, asio::buffer(sink.data(), n), asio::use_awaitable);
          left -= static_cast<uint32_t>(n);
        }
        respond(h.stream_id, Reply::error(wire(ErrorCode::kResourceExhausted), "message of " + std::to_string(h.length) +
                                                                  " bytes exceeds the 4 MiB limit"));
        continue;
      }
      std::string data(h.length, '\0');
      if (h.length) co_await asio::async_read(sock_, asio::buffer(data), asio::use_awaitable);
      if (h.type != kTypeRequest) {
        LOG_WARN_RATELIMITED("ttrpc: ignoring a frame of type %u on stream %u", h.type, h.stream_id);
        continue;
      }
      if (h.stream_id == 0 || h.stream_id % 2 == 0) {
        respond(h.stream_id, Reply::error(wire(ErrorCode::kInvalidArgument), "stream id " + std::to_string(h.stream_id) +
                                                                " is not a client stream (must be odd)"));
        continue;
      }
      ::ttrpc::Request req;
      if (!req.ParseFromString(data)) {
        respond(h.stream_id, Reply::error(wire(ErrorCode::kInvalidArgument), "request is not a ttrpc Request message"));
        continue;
      }
      dispatch(h.stream_id, std::move(req));
    }
  }

  void close() {
    asio::post(sock_.get_executor(), [self = shared_from_this()] {
      boost::system::error_code ec;
      self->sock_.shutdown(local::socket::shutdown_both, ec);
      self->sock_.close(ec);
    });
  }

 private:
  void dispatch(uint32_t id, ::ttrpc::Request req) {
    auto it = server_.handlers_.find(req.service() + "/" + req.method());
    if (it == server_.handlers_.end()) {
      bool known_service = false;
      for (const auto& [name, h] : server_.handlers_) known_service |= name.rfind(req.service() + "/", 0) == 0;
      respond(id, Reply::error(wire(ErrorCode::kUnimplemented), known_service ? "method " + req.method() + " not implemented"
                                                             : "service " + req.service() + " not implemented"));
      return;
    }
    CallContext ctx;
    ctx.service = req.service();
    ctx.method = req.method();
    if (req.timeout_nano() > 0)
      ctx.deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(req.timeout_nano());
    for (const auto& kv : req.metadata()) ctx.metadata[kv.key()] = kv.value();
    {
      std::lock_guard lk(server_.mu_);
      server_.running_++;
    }
    // A thread per call: handlers may block (Wait) without holding up the connection.
    std::thread([self = shared_from_this(), id, handler = it->second, ctx = std::move(ctx),
                 payload = std::move(*req.mutable_payload())] {
      Reply r;
      try {
        r = handler(payload, ctx);
      } catch (const std::exception& e) {
        r = Reply::error(wire(ErrorCode::kInternal), std::string("handler failed: ") + e.what());
      }
      self->respond(id, std::move(r));
      std::lock_guard lk(self->server_.mu_);
      self->server_.running_--;
      self->server_.cv_.notify_all();
    }).detach();
  }

  void respond(uint32_t id, Reply r) {
    ::ttrpc::Response resp;
    resp.mutable_status()->set_code(r.code);
    if (r.code != kOk) resp.mutable_status()->set_message(r.message);
    else resp.set_payload(std::move(r.payload));
    std::string f = frame(id, kTypeResponse, resp.SerializeAsString());
    asio::post(sock_.get_executor(), [self = shared_from_this(), f = std::move(f)]() mutable {
      self->out_.push_back(std::move(f));
      if (self->out_.size() == 1) self->write_next();
    });
  }

  void write_next() {
    asio::async_write(sock_, asio::buffer(out_.front()), [self = shared_from_this()](boost::system::error_code ec, size_t) {
      if (ec) {
        self->out_.clear();  // the client is gone; later answers are dropped
        return;
      }
      self->out_.pop_front();
      if (!self->out_.empty()) self->write_next();
    });
  }

  Server& server_;
  local::socket sock_;
  std::deque<std::string> out_;  // io thread only
};

Server::~Server() { stop(); }

void Server::register_method(const std::string& service, const std::string& method, Handler h) {
  handlers_[service + "/" + method] = std::move(h);
}

Status Server::listen(const std::string& path) {
  ::unlink(path.c_str());
  boost::system::error_code ec;
  acceptor_.open(local(), ec);
  if (!ec) acceptor_.bind(local::endpoint(path), ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error("ttrpc: listening on %s: %s", path.c_str(), ec.message().c_str());
  return {};
}

Status Server::adopt(int fd) {
  boost::system::error_code ec;
  // Inherited across exec on purpose; no helper we start may inherit it further.
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  acceptor_.assign(local(), fd, ec);
  if (ec) return make_error("ttrpc: adopting fd %d: %s", fd, ec.message().c_str());
  return {};
}

void Server::start() { accept(); }

void Server::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, local::socket sock) {
    if (ec) {
      if (ec != asio::error::operation_aborted) LOG_ERROR("ttrpc accept: %s", ec.message().c_str());
      return;
    }
    // Asio's accept leaves the new socket inheritable: a helper started meanwhile would keep
    // containerd's connection open. (Helpers also get only stdio: see the sandbox's spawn.)
    ::fcntl(sock.native_handle(), F_SETFD, FD_CLOEXEC);
    auto conn = std::make_shared<Connection>(*this, std::move(sock));
    {
      std::lock_guard lk(mu_);
      std::erase_if(open_, [](const auto& w) { return w.expired(); });
      open_.push_back(conn);
    }
    connections_++;
    asio::co_spawn(io_, conn->read_loop(), [this, conn](std::exception_ptr) {
      // EOF or a read error ends the connection; answers still in flight are dropped.
      conn->close();
      connections_--;
    });
    accept();
  });
}

void Server::stop() {
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& w : open_)
      if (auto c = w.lock()) conns.push_back(c);
  }
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (auto& c : conns) c->close();
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, std::chrono::seconds(5), [&] { return running_ == 0; });
}

}  // namespace husk::ttrpc
