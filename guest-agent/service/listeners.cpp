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

Result<std::unique_ptr<VsockBridge>> VsockBridge::listen(unsigned port, std::string unix_path, unsigned peer_cid) {
  UniqueFd fd(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return make_error("vsock socket: %s (is virtio-vsock configured?)", strerror(errno));
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return make_error("vsock bind port %u: %s", port, strerror(errno));
  if (::listen(fd.get(), 16) != 0) return make_error("vsock listen: %s", strerror(errno));
  return std::unique_ptr<VsockBridge>(new VsockBridge(std::move(fd), std::move(unix_path), peer_cid));  // NOLINT: private ctor
}

void VsockBridge::serve() {
  thread_ = std::thread([this] {
    while (!stop_) {
      sockaddr_vm peer{};
      socklen_t len = sizeof peer;
      UniqueFd c(accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
      if (!c) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {  // transient: do not spin
          usleep(10000);
          continue;
        }
        if (!stop_) LOG_ERROR("vsock accept: %s", strerror(errno));
        return;
      }
      if (len < sizeof peer || peer.svm_family != AF_VSOCK || peer.svm_cid != peer_cid_) {
        LOG_WARN_RATELIMITED("vsock: refused a connection from CID %u port %u: only the host (CID %u) may talk to the agent",
                             peer.svm_cid, peer.svm_port, peer_cid_);
        continue;  // closes it
      }
      if (relays_->fetch_add(1) >= kMaxRelays) {
        relays_->fetch_sub(1);
        LOG_WARN_RATELIMITED("vsock: %d connections open: refusing another", kMaxRelays);
        continue;
      }
      auto server = connect_unix(unix_path_);
      if (!server) {
        relays_->fetch_sub(1);
        LOG_ERROR("relaying vsock: %s", server.error().message.c_str());
        continue;
      }
      // The thread owns what it uses (not `this`): it may outlive the bridge at shutdown.
      std::thread([relays = relays_, a = std::move(c), b = std::move(server.value())]() mutable {
        relay_streams(std::move(a), std::move(b));
        relays->fetch_sub(1);
      }).detach();
    }
  });
}

void relay_streams(UniqueFd client, UniqueFd server) {
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
