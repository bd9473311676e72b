#include "vmm/virtio/fs/bounce.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace husk::virtio {

Result<BounceArea> BounceArea::create(uint64_t ring_pages, uint64_t data_bytes) {
  if (data_bytes == 0 || data_bytes % kPage) return make_error("bounce area: data size must be whole pages");
  uint64_t size = ring_pages * kPage + data_bytes;
  UniqueFd fd(::memfd_create("husk-fs-bounce", MFD_CLOEXEC));
  if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    return make_error("virtio-fs bounce area: %s", std::strerror(errno));
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return make_error("virtio-fs bounce area: mmap: %s", std::strerror(errno));
  ::madvise(p, size, MADV_DONTDUMP);  // file contents of a tenant
  return BounceArea(std::move(fd), Mapping(p, size), ring_pages * kPage, data_bytes / kPage);
}

std::optional<uint64_t> BounceArea::alloc(uint64_t bytes) {
  const uint64_t want = page_count(bytes), total = pages_.size();
  for (uint64_t start = 0; start + want <= total;) {
    uint64_t n = 0;
    while (n < want && !pages_[start + n]) ++n;
    if (n == want) {
      for (uint64_t i = 0; i < want; ++i) pages_[start + i] = true;
      return data_offset_ + start * kPage;
    }
    start += n + 1;  // past the page in use
  }
  return std::nullopt;
}

void BounceArea::free(uint64_t offset, uint64_t bytes) {
  const uint64_t first = (offset - data_offset_) / kPage;
  for (uint64_t i = 0; i < page_count(bytes); ++i) pages_[first + i] = false;
}

}  // namespace husk::virtio
