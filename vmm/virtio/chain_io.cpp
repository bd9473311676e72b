#include "vmm/virtio/chain_io.h"

#include <cstring>

namespace husk::virtio {

Result<std::vector<iovec>> chain_iovecs(GuestMemory& mem, const std::vector<Segment>& segs,
                                        uint64_t offset, uint64_t len) {
  std::vector<iovec> out;
  for (const auto& s : segs) {
    if (len == 0) break;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    uint64_t n = std::min<uint64_t>(s.len - offset, len);
    auto slice = mem.slice(GuestAddress(s.addr.value + offset), n);
    if (!slice) return slice.error();
    out.push_back(iovec{slice->data(), n});
    len -= n;
    offset = 0;
  }
  if (len) return make_error("request runs past the end of its descriptor chain");
  return out;
}

Status copy_from_chain(const GuestMemory& mem, const std::vector<Segment>& segs, uint64_t offset,
                       std::span<uint8_t> out) {
  // const_cast is safe: the iovecs are only read from here.
  auto iov = chain_iovecs(const_cast<GuestMemory&>(mem), segs, offset, out.size());
  if (!iov) return iov.error();
  size_t at = 0;
  for (const auto& v : *iov) {
    std::memcpy(out.data() + at, v.iov_base, v.iov_len);
    at += v.iov_len;
  }
  return {};
}

Status copy_to_chain(GuestMemory& mem, const std::vector<Segment>& segs, uint64_t offset,
                     std::span<const uint8_t> in) {
  auto iov = chain_iovecs(mem, segs, offset, in.size());
  if (!iov) return iov.error();
  size_t at = 0;
  for (const auto& v : *iov) {
    std::memcpy(v.iov_base, in.data() + at, v.iov_len);
    at += v.iov_len;
  }
  return {};
}

}  // namespace husk::virtio
