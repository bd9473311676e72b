#include "common/sockets.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/vm_sockets.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace husk {

namespace {

Result<sockaddr_un> unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  // An empty path would bind or reach the abstract namespace, not a file.
  if (path.empty() || path.size() >= sizeof a.sun_path)
    return make_error("unix socket path '%s' is empty or longer than %zu bytes", path.c_str(), sizeof a.sun_path - 1);
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

}  // namespace

Result<UniqueFd> connect_unix(const std::string& path, bool nonblocking) {
  auto addr = unix_addr(path);
  if (!addr) return addr.error();
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
  if (!fd) return make_error("socket: %s", strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0)
    return make_error("connect %s: %s", path.c_str(), strerror(errno));
  return fd;
}

Result<UniqueFd> listen_unix(const std::string& path, int backlog, bool nonblocking, unsigned mode) {
  auto addr = unix_addr(path);
  if (!addr) return addr.error();
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
  if (!fd) return make_error("socket: %s", strerror(errno));
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr) != 0 ||
      ::chmod(path.c_str(), mode) != 0 || ::listen(fd.get(), backlog) != 0)
    return make_error("cannot listen on %s: %s", path.c_str(), strerror(errno));
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
