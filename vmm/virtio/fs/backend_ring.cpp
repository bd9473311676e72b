#include "vmm/virtio/fs/backend_ring.h"

#include <cstring>

#include "vmm/virtio/queue.h"

namespace husk::virtio {
namespace {

using Desc = VirtqDesc;
struct UsedElem {
  uint32_t id, len;
};
// One page: descriptors, avail {flags, idx, ring[kSize], used_event}, used {flags, idx,
// ring[kSize], avail_event}.
constexpr uint64_t kDescOff = 0;
constexpr uint64_t kAvailOff = kDescOff + BackendRing::kSize * sizeof(Desc);
constexpr uint64_t kUsedOff = kAvailOff + 512;
static_assert(kAvailOff + 4 + BackendRing::kSize * 2 + 2 <= kUsedOff);
static_assert(kUsedOff + 4 + BackendRing::kSize * sizeof(UsedElem) + 2 <= 4096);

}  // namespace

BackendRing::BackendRing(uint8_t* ring, const uint8_t* base, uint64_t base_addr)
    : ring_(ring), base_(base), base_addr_(base_addr), busy_(kSlots, false) {
  clear();
}

void BackendRing::clear() {
  std::memset(ring_, 0, 4096);
  avail_idx_ = used_seen_ = 0;
  free_slots_.clear();
  for (uint16_t s = kSlots; s > 0; --s) free_slots_.push_back(static_cast<uint16_t>(s - 1));
  busy_.assign(kSlots, false);
}

uint64_t BackendRing::desc_user_addr() const { return reinterpret_cast<uint64_t>(ring_ + kDescOff); }
uint64_t BackendRing::avail_user_addr() const { return reinterpret_cast<uint64_t>(ring_ + kAvailOff); }
uint64_t BackendRing::used_user_addr() const { return reinterpret_cast<uint64_t>(ring_ + kUsedOff); }

uint16_t BackendRing::post(const uint8_t* at, uint32_t readable, uint32_t writable) {
  const uint16_t slot = free_slots_.back();
  free_slots_.pop_back();
  busy_[slot] = true;
  const uint16_t head = static_cast<uint16_t>(slot * 2);
  const uint64_t addr = base_addr_ + static_cast<uint64_t>(at - base_);
  Desc d[2] = {};
  int n = 0;
  if (readable) d[n++] = Desc{addr, readable, 0, 0};
  if (writable) d[n++] = Desc{addr + readable, writable, kDescFWrite, 0};
  if (n == 2) d[0].flags |= kDescFNext, d[0].next = static_cast<uint16_t>(head + 1);
  std::memcpy(ring_ + kDescOff + uint64_t{head} * sizeof(Desc), d, sizeof(Desc) * static_cast<size_t>(n));
  std::memcpy(ring_ + kAvailOff + 4 + static_cast<uint64_t>(avail_idx_ % kSize) * 2, &head, 2);
  ++avail_idx_;
  // Descriptors and ring entry before the index that publishes them.
  __atomic_store_n(reinterpret_cast<uint16_t*>(ring_ + kAvailOff + 2), avail_idx_, __ATOMIC_RELEASE);
  return slot;
}

Result<std::optional<BackendRing::Completion>> BackendRing::collect() {
  const uint16_t idx = __atomic_load_n(reinterpret_cast<const uint16_t*>(ring_ + kUsedOff + 2), __ATOMIC_ACQUIRE);
  if (idx == used_seen_) return std::optional<Completion>();
  if (static_cast<uint16_t>(idx - used_seen_) > static_cast<uint16_t>(avail_idx_ - used_seen_))
    return make_error("virtio-fs backend's used index %u is past the %u requests posted", idx, avail_idx_);
  UsedElem e;
  std::memcpy(&e, ring_ + kUsedOff + 4 + static_cast<uint64_t>(used_seen_ % kSize) * sizeof e, sizeof e);
  ++used_seen_;
  if (e.id % 2 || e.id / 2 >= kSlots || !busy_[e.id / 2])
    return make_error("virtio-fs backend returned descriptor %u, which is not a request in flight", e.id);
  const auto slot = static_cast<uint16_t>(e.id / 2);
  busy_[slot] = false;
  free_slots_.push_back(slot);
  return std::optional<Completion>(Completion{slot, e.len});
}

}  // namespace husk::virtio
