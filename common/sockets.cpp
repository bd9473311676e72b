#include "common/sockets.h"

#include <sys/socket.h>
#include <linux/vm_sockets.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace husk {

Result<UniqueFd> connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return make_error("%s: socket path too long", path.c_str());
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return make_error("socket: %s", strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return make_error("connect %s: %s", path.c_str(), strerror(errno));
  return fd;
}

Result<UniqueFd> connect_vsock(unsigned cid, unsigned port) {
  UniqueFd fd(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return make_error("vsock socket: %s", strerror(errno));
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = cid;
  addr.svm_port = port;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return make_error("vsock connect %u:%u: %s", cid, port, strerror(errno));
  return fd;
}

}  // namespace husk
