// The backend's side of the vhost-user wire for tests: one message with the fds it carries.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace husk::virtio::testing {

struct VhostUserMsg {
  uint32_t request = 0, flags = 0, size = 0;
  std::vector<uint8_t> payload;
  std::vector<int> fds;  // the caller's to close
};

// Reads one message; false when none came within `timeout_ms` (-1: wait) or the peer is gone.
inline bool recv_vhost_user(int fd, VhostUserMsg& m, int timeout_ms = -1) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  uint32_t hdr[3];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  iovec iov{hdr, sizeof hdr};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  if (::recvmsg(fd, &mh, MSG_WAITALL) != sizeof hdr) return false;
  m.request = hdr[0], m.flags = hdr[1], m.size = hdr[2];
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    m.fds.resize(n);
    std::memcpy(m.fds.data(), CMSG_DATA(c), sizeof(int) * n);
  }
  m.payload.resize(m.size);
  if (m.size) (void)!::recv(fd, m.payload.data(), m.size, MSG_WAITALL);
  return true;
}

}  // namespace husk::virtio::testing
