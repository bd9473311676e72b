// The driver side of a split virtqueue (virtio 1.x, 2.7) that husk-vmm runs toward a vhost-user
// backend, laid out in one page of the bounce area. Each request is two descriptors at most: the
// bytes the backend reads, then the bytes it may write, both copies in the bounce area. What the
// backend returns in the used ring is checked like any input from another process.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/result.h"

namespace husk::virtio {

class BackendRing {
 public:
  static constexpr uint16_t kSize = 128;        // descriptors
  static constexpr uint16_t kSlots = kSize / 2;  // requests in flight, two descriptors each

  // `ring` is the page holding this ring (our address); `base_addr` is the address the backend
  // knows the bounce area by (its "guest physical" address in the vhost-user memory table) and
  // `base` our address of it, to turn our pointers into descriptor addresses.
  BackendRing(uint8_t* ring, const uint8_t* base, uint64_t base_addr);

  // Our addresses of the three parts, for VHOST_USER_SET_VRING_ADDR.
  uint64_t desc_user_addr() const;
  uint64_t avail_user_addr() const;
  uint64_t used_user_addr() const;

  bool full() const { return free_slots_.empty(); }
  // Publishes a request: `readable` bytes at `at` (our address), then `writable` bytes right
  // after them. Returns its slot. Not when full().
  uint16_t post(const uint8_t* at, uint32_t readable, uint32_t writable);

  struct Completion {
    uint16_t slot;
    uint32_t written;  // as the backend says; the caller clamps it to what it offered
  };
  // The next request the backend returned, nothing when none, an error when the backend
  // returned something that is not in flight or moved its index past what we posted.
  Result<std::optional<Completion>> collect();

  // Forgets every request in flight (the backend was replaced) and clears the rings.
  void clear();

 private:
  uint8_t* ring_;
  const uint8_t* base_;
  uint64_t base_addr_;
  uint16_t avail_idx_ = 0, used_seen_ = 0;
  std::vector<uint16_t> free_slots_;
  std::vector<bool> busy_;
};

}  // namespace husk::virtio
