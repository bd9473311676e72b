#include "vmm/virtio/fs/vhost_user.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/inherited_fd.h"

namespace husk::virtio {
namespace {

enum : uint32_t {
  kGetFeatures = 1, kSetFeatures = 2, kSetOwner = 3, kSetMemTable = 5, kSetVringNum = 8,
  kSetVringAddr = 9, kSetVringBase = 10, kSetVringKick = 12, kSetVringCall = 13,
  kGetProtocolFeatures = 15, kSetProtocolFeatures = 16, kSetVringEnable = 18,
};
constexpr uint32_t kVersion = 0x1, kReply = 0x4;
constexpr size_t kMaxRegions = 8;

struct MsgHeader {
  uint32_t request, flags, size;
};
struct VringState {
  uint32_t index, num;
};
struct VringAddr {
  uint32_t index, flags;
  uint64_t desc, used, avail, log;
};
struct MemRegion {
  uint64_t guest_phys_addr, memory_size, userspace_addr, mmap_offset;
};
struct MemTable {
  uint32_t nregions, padding;
  MemRegion regions[kMaxRegions];
};

}  // namespace

Result<VhostUserClient> VhostUserClient::connect(const std::string& path) {
  VhostUserClient c;
  // A backend that stops answering must not hang the VMM forever.
  timeval tv{10, 0};
  if (int n; is_fd_spec(path, &n)) {
    auto fd = take_inherited_fd(n);
    if (!fd) return fd.error().wrap("vhost-user backend: ");
    c.fd_ = std::move(fd.value());
    ::setsockopt(c.fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
  }
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    return make_error("vhost-user socket path '%s' is empty or too long", path.c_str());
  std::memcpy(a.sun_path, path.c_str(), path.size());
  c.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!c.fd_ || ::connect(c.fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return make_error("cannot connect to the vhost-user backend at %s: %s", path.c_str(), strerror(errno));
  ::setsockopt(c.fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return c;
}

Status VhostUserClient::send(uint32_t request, std::span<const uint8_t> payload, std::span<const int> fds) {
  MsgHeader h{request, kVersion, static_cast<uint32_t>(payload.size())};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<uint8_t*>(payload.data()), payload.size()}};
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = payload.empty() ? 1 : 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxRegions)] = {};
  if (!fds.empty()) {
    if (fds.size() > kMaxRegions) return make_error("vhost-user: too many fds");
    m.msg_control = control;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = ::sendmsg(fd_.get(), &m, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof h + payload.size()))
    return make_error("vhost-user: sending request %u failed: %s", request, strerror(errno));
  return {};
}

Result<std::vector<uint8_t>> VhostUserClient::receive(uint32_t request) {
  MsgHeader h;
  if (::recv(fd_.get(), &h, sizeof h, MSG_WAITALL) != sizeof h)
    return make_error("vhost-user: no reply to request %u", request);
  // The backend is another process: its reply is checked like any other input.
  if (h.request != request || !(h.flags & kReply) || h.size > 4096)
    return make_error("vhost-user: malformed reply to request %u", request);
  std::vector<uint8_t> payload(h.size);
  if (h.size && ::recv(fd_.get(), payload.data(), h.size, MSG_WAITALL) != static_cast<ssize_t>(h.size))
    return make_error("vhost-user: truncated reply to request %u", request);
  return payload;
}

Result<uint64_t> VhostUserClient::get_u64(uint32_t request) {
  if (auto s = send(request, {}); !s) return s.error();
  auto r = receive(request);
  if (!r) return r.error();
  if (r->size() != sizeof(uint64_t)) return make_error("vhost-user: reply to %u has the wrong size", request);
  uint64_t v;
  std::memcpy(&v, r->data(), sizeof v);
  return v;
}

Result<uint64_t> VhostUserClient::get_features() { return get_u64(kGetFeatures); }
Status VhostUserClient::set_features(uint64_t f) { return send_obj(kSetFeatures, f); }
Status VhostUserClient::set_owner() { return send(kSetOwner, {}); }
Result<uint64_t> VhostUserClient::get_protocol_features() { return get_u64(kGetProtocolFeatures); }
Status VhostUserClient::set_protocol_features(uint64_t f) { return send_obj(kSetProtocolFeatures, f); }
Status VhostUserClient::set_vring_num(uint32_t i, uint32_t n) { return send_obj(kSetVringNum, VringState{i, n}); }
Status VhostUserClient::set_vring_base(uint32_t i, uint32_t b) { return send_obj(kSetVringBase, VringState{i, b}); }
Status VhostUserClient::set_vring_enable(uint32_t i, bool e) { return send_obj(kSetVringEnable, VringState{i, e ? 1u : 0u}); }

Status VhostUserClient::set_vring_addr(uint32_t i, uint64_t desc, uint64_t used, uint64_t avail) {
  return send_obj(kSetVringAddr, VringAddr{i, 0, desc, used, avail, 0});
}

Status VhostUserClient::set_vring_kick(uint32_t i, int fd) {
  uint64_t v = i;
  return send_obj(kSetVringKick, v, std::span<const int>(&fd, 1));
}

Status VhostUserClient::set_vring_call(uint32_t i, int fd) {
  uint64_t v = i;
  return send_obj(kSetVringCall, v, std::span<const int>(&fd, 1));
}

Status VhostUserClient::set_mem_table(std::span<const VhostUserRegion> regions) {
  if (regions.size() > kMaxRegions) return make_error("vhost-user: too many memory regions");
  MemTable t{};
  std::vector<int> fds;
  for (const auto& r : regions) {
    t.regions[t.nregions++] = MemRegion{r.addr, r.size, r.user_addr, 0};
    fds.push_back(r.fd);
  }
  // Only the used part of the table is sent (the size field says how much).
  size_t len = 8 + sizeof(MemRegion) * t.nregions;
  return send(kSetMemTable, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&t), len), fds);
}

}  // namespace husk::virtio
