// libFuzzer target: a hostile vhost-user backend (virtiofsd is a separate, less trusted process).
// The input is every byte the backend sends back while husk-vmm sets up a virtio-fs device:
// replies of any size, type and content, cut short anywhere. The client must turn each into a
// result or an error, never read past what it got or wait without bound.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "vmm/virtio/fs/vhost_user.h"

using namespace husk;
using namespace husk::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 65536) return 0;  // what fits in the socket's buffer at once
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  if (size && ::write(sv[1], data, size) != static_cast<ssize_t>(size)) {
    ::close(sv[0]);
    ::close(sv[1]);
    return 0;
  }
  ::shutdown(sv[1], SHUT_WR);  // the backend said all it will say
  auto c = VhostUserClient::connect("fd=" + std::to_string(sv[0]));
  if (!c) {
    ::close(sv[1]);
    return 0;
  }
  int memfd = ::dup(sv[0]);  // any descriptor: the backend's end never maps it here
  const VhostUserRegion region{0, 0x10000, 0x10000, memfd};
  (void)c->set_owner();
  (void)c->get_features();
  (void)c->get_protocol_features();
  (void)c->set_features(1ull << 32);
  (void)c->set_mem_table(std::span<const VhostUserRegion>(&region, 1));
  (void)c->set_vring_num(0, 8);
  (void)c->set_vring_base(0, 0);
  (void)c->get_features();
  ::close(memfd);
  ::close(sv[1]);
  return 0;
}
