// The only memory husk-vmm shares with a vhost-user backend (virtiofsd): a memfd holding the
// driver side of the backend's rings and the bytes of the requests in flight. Guest memory is
// never shared, so it can stay private (a snapshot restores it MAP_PRIVATE and copies of one
// template share its pages), a compromised backend sees only requests, not the guest, and the
// guest cannot change a request after it was handed over (it is a copy).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/mapping.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace husk::virtio {

class BounceArea {
 public:
  static constexpr uint64_t kPage = 4096;

  // `ring_pages` pages for rings, then `data_bytes` (page multiple) for request bytes.
  static Result<BounceArea> create(uint64_t ring_pages, uint64_t data_bytes);

  int fd() const { return fd_.get(); }
  uint8_t* base() const { return map_.data(); }
  uint64_t size() const { return map_.size(); }
  uint64_t data_bytes() const { return uint64_t{pages_.size()} * kPage; }

  // A contiguous run of data pages for `bytes` (at least one page), first fit from the start so
  // that a quiet guest keeps touching the same few pages; its offset from base(), or nothing
  // while the area is too full.
  std::optional<uint64_t> alloc(uint64_t bytes);
  void free(uint64_t offset, uint64_t bytes);
  // [offset, offset+len) of the area; both were checked by alloc's caller.
  std::span<uint8_t> span(uint64_t offset, uint64_t len) const { return {base() + offset, len}; }

 private:
  BounceArea(UniqueFd fd, Mapping map, uint64_t data_offset, uint64_t data_pages)
      : fd_(std::move(fd)), map_(std::move(map)), data_offset_(data_offset), pages_(data_pages, false) {}
  static uint64_t page_count(uint64_t bytes) { return bytes == 0 ? 1 : (bytes + kPage - 1) / kPage; }

  UniqueFd fd_;
  Mapping map_;
  uint64_t data_offset_;
  std::vector<bool> pages_;  // in use
};

}  // namespace husk::virtio
