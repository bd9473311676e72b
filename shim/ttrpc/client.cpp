#include "shim/ttrpc/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/sockets.h"
#include "proto/ttrpc.pb.h"

namespace husk::ttrpc {
namespace {

bool read_full(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<Client>> Client::connect(const std::string& path) {
  auto fd = connect_unix(path);
  if (!fd) return make_error("ttrpc: %s", fd.error().message.c_str());
  return std::unique_ptr<Client>(new Client(std::move(fd.value())));  // NOLINT: private ctor
}

Client::Client(UniqueFd fd) : fd_(std::move(fd)) {
  reader_ = std::thread([this] { read_loop(); });
}

Client::~Client() {
  shutdown(fd_.get(), SHUT_RDWR);
  reader_.join();
}

void Client::read_loop() {
  for (;;) {
    uint8_t hdr[kHeaderSize];
    if (!read_full(fd_.get(), hdr, sizeof hdr)) break;
    FrameHeader h = decode_header(hdr);
    if (h.length > kMaxData) break;
    std::string data(h.length, '\0');
    if (h.length && !read_full(fd_.get(), data.data(), data.size())) break;
    ::ttrpc::Response resp;
    Reply r;
    if (h.type != kTypeResponse || !resp.ParseFromString(data)) {
      r = Reply::error(wire(ErrorCode::kInternal), "malformed response");
    } else {
      r.code = resp.status().code();
      r.message = resp.status().message();
      r.payload = resp.payload();
    }
    std::lock_guard lk(mu_);
    if (auto it = pending_.find(h.stream_id); it != pending_.end()) it->second = std::move(r);
    cv_.notify_all();
  }
  std::lock_guard lk(mu_);
  closed_ = true;
  cv_.notify_all();
}

Result<Reply> Client::call(const std::string& service, const std::string& method, const std::string& payload,
                           std::chrono::milliseconds timeout) {
  ::ttrpc::Request req;
  req.set_service(service);
  req.set_method(method);
  req.set_payload(payload);
  req.set_timeout_nano(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count());
  uint32_t id;
  {
    std::lock_guard lk(mu_);
    if (closed_) return make_error("ttrpc: connection closed");
    id = next_id_;
    next_id_ += 2;
    pending_[id];
  }
  std::string f = frame(id, kTypeRequest, req.SerializeAsString());
  {
    std::lock_guard lk(write_mu_);
    size_t off = 0;
    while (off < f.size()) {
      ssize_t n = ::send(fd_.get(), f.data() + off, f.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::lock_guard lk2(mu_);
        pending_.erase(id);
        return make_error("ttrpc: send: %s", strerror(errno));
      }
      off += static_cast<size_t>(n);
    }
  }
  std::unique_lock lk(mu_);
  bool done = cv_.wait_for(lk, timeout, [&] { return pending_[id].has_value() || closed_; });
  std::optional<Reply> r = std::move(pending_[id]);
  pending_.erase(id);
  if (r) return std::move(*r);
  if (!done) return make_error("ttrpc: %s/%s timed out", service.c_str(), method.c_str());
  return make_error("ttrpc: connection closed during %s/%s", service.c_str(), method.c_str());
}

}  // namespace husk::ttrpc
