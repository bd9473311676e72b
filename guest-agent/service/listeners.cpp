#include "guest-agent/service/listeners.h"

#include <grpcpp/server_posix.h>
#include <linux/vm_sockets.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace husk::agent {

Result<std::unique_ptr<VsockListener>> VsockListener::listen(unsigned port) {
  UniqueFd fd(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return make_error("vsock socket: %s (is virtio-vsock configured?)", strerror(errno));
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return make_error("vsock bind port %u: %s", port, strerror(errno));
  if (::listen(fd.get(), 16) != 0) return make_error("vsock listen: %s", strerror(errno));
  return std::unique_ptr<VsockListener>(new VsockListener(std::move(fd)));  // NOLINT: private ctor
}

void VsockListener::serve(grpc::Server* server) {
  thread_ = std::thread([this, server] {
    while (!stop_) {
      int c = accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (!stop_) LOG_ERROR("vsock accept: %s", strerror(errno));
        return;
      }
      // The server owns the fd from here on.
      grpc::AddInsecureChannelFromFd(server, c);
    }
  });
}

VsockListener::~VsockListener() {
  stop_ = true;
  shutdown(fd_.get(), SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
}

}  // namespace husk::agent
