#include "guest-agent/service/listeners.h"

#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/sockets.h"

namespace husk::agent {

Result<std::unique_ptr<VsockBridge>> VsockBridge::listen(unsigned port, std::string unix_path) {
  UniqueFd fd(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return make_error("vsock socket: %s (is virtio-vsock configured?)", strerror(errno));
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return make_error("vsock bind port %u: %s", port, strerror(errno));
  if (::listen(fd.get(), 16) != 0) return make_error("vsock listen: %s", strerror(errno));
  return std::unique_ptr<VsockBridge>(new VsockBridge(std::move(fd), std::move(unix_path)));  // NOLINT: private ctor
}

void VsockBridge::serve() {
  thread_ = std::thread([this] {
    while (!stop_) {
      int c = accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (!stop_) LOG_ERROR("vsock accept: %s", strerror(errno));
        return;
      }
      std::thread([this, c] { relay(UniqueFd(c)); }).detach();
    }
  });
}

void VsockBridge::relay(UniqueFd client) {
  auto conn = connect_unix(unix_path_);
  if (!conn) {
    LOG_ERROR("relaying vsock: %s", conn.error().message.c_str());
    return;
  }
  UniqueFd server = std::move(conn.value());
  // Each direction: read what is there, write all of it, until either side closes.
  char buf[65536];
  pollfd fds[2] = {{client.get(), POLLIN, 0}, {server.get(), POLLIN, 0}};
  bool open[2] = {true, true};
  while (open[0] || open[1]) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; i++) {
      if (!open[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int to = fds[1 - i].fd;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        open[i] = false;
        fds[i].fd = -1;
        shutdown(to, SHUT_WR);
        continue;
      }
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
        if (w < 0) {
          if (errno == EINTR) continue;
          return;  // the other side is gone
        }
        off += w;
      }
    }
  }
}

VsockBridge::~VsockBridge() {
  stop_ = true;
  shutdown(fd_.get(), SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
}

}  // namespace husk::agent
