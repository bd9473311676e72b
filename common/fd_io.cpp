#include "common/fd_io.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace husk {

namespace {
constexpr size_t kChunk = size_t{1} << 30;  // what one call may move (Linux caps near 2 GiB)
}

Status pread_full(int fd, void* buf, size_t n, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, std::min(n, kChunk), static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return make_error("read: %s", std::strerror(errno));
    if (r == 0) return make_error("read: file too short");
    p += r, offset += static_cast<uint64_t>(r), n -= static_cast<size_t>(r);
  }
  return {};
}

Status pwrite_full(int fd, const void* buf, size_t n, uint64_t offset) {
  auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, std::min(n, kChunk), static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return make_error("write: %s", w < 0 ? std::strerror(errno) : "no progress");
    p += w, offset += static_cast<uint64_t>(w), n -= static_cast<size_t>(w);
  }
  return {};
}

}  // namespace husk
