#include "vmm/virtio/queue.h"

#include <atomic>

namespace husk::virtio {
namespace {

using Desc = VirtqDesc;

// Ring offsets (split layout): avail = {flags, idx, ring[size], used_event};
// used = {flags, idx, ring[size] of {id, len}, avail_event}.
constexpr uint64_t kAvailIdx = 2, kAvailRing = 4;
constexpr uint64_t kUsedIdx = 2, kUsedRing = 4, kUsedElem = 8;
constexpr uint32_t kMaxIndirect = 1024;  // descriptors in one indirect table

bool power_of_two(uint32_t v) { return v && !(v & (v - 1)); }

}  // namespace

uint64_t DescriptorChain::readable_bytes() const {
  uint64_t n = 0;
  for (const auto& s : readable) n += s.len;
  return n;
}

uint64_t DescriptorChain::writable_bytes() const {
  uint64_t n = 0;
  for (const auto& s : writable) n += s.len;
  return n;
}

Status Queue::validate(const GuestMemory& mem) const {
  if (!power_of_two(size) || size > max_size_)
    return make_error("queue size %u is not a power of two up to %u", size, max_size_);
  if (desc_table.value % 16 || avail_ring.value % 2 || used_ring.value % 4)
    return make_error("queue rings are misaligned");
  if (!mem.contains(desc_table, uint64_t{size} * sizeof(Desc)) ||
      !mem.contains(avail_ring, kAvailRing + uint64_t{size} * 2 + 2) ||
      !mem.contains(used_ring, kUsedRing + uint64_t{size} * kUsedElem + 2))
    return make_error("queue rings lie outside guest memory");
  return {};
}

void Queue::reset() {
  size = 0;
  ready = false;
  desc_table = avail_ring = used_ring = GuestAddress(0);
  event_idx = false;
  next_avail_ = next_used_ = signalled_used_ = 0;
  signalled_valid_ = false;
}

void Queue::save(snapshot::Writer& w) const {
  w.u16(size);
  w.boolean(ready);
  w.u64(desc_table.value);
  w.u64(avail_ring.value);
  w.u64(used_ring.value);
  w.boolean(event_idx);
  w.u16(next_avail_);
  w.u16(next_used_);
  w.u16(signalled_used_);
  w.boolean(signalled_valid_);
}

void Queue::restore(snapshot::Reader& r) {
  size = r.u16("queue size");
  ready = r.boolean("queue ready");
  desc_table = GuestAddress(r.u64("queue descriptor table"));
  avail_ring = GuestAddress(r.u64("queue available ring"));
  used_ring = GuestAddress(r.u64("queue used ring"));
  event_idx = r.boolean("queue event index");
  next_avail_ = r.u16("queue next available");
  next_used_ = r.u16("queue next used");
  signalled_used_ = r.u16("queue signalled used");
  signalled_valid_ = r.boolean("queue signalled");
  if (size > max_size_) r.fail("queue size", "exceeds the device's maximum");
}

Status Queue::walk(const GuestMemory& mem, GuestAddress table, uint32_t count, uint16_t index,
                   bool indirect, DescriptorChain& chain, uint32_t& budget) const {
  for (;;) {
    if (index >= count) return make_error("descriptor index %u out of range %u", index, count);
    // A chain visits each descriptor at most once: more steps than descriptors is a loop.
    if (budget == 0) return make_error("descriptor chain is longer than its table (a loop?)");
    --budget;
    auto d = mem.read_obj<Desc>(GuestAddress(table.value + uint64_t{index} * sizeof(Desc)));
    if (!d) return d.error();
    if (d->flags & kDescFIndirect) {
      if (indirect) return make_error("nested indirect descriptor table");
      if (d->flags & kDescFNext) return make_error("indirect descriptor with NEXT set");
      if (d->len == 0 || d->len % sizeof(Desc) || d->len / sizeof(Desc) > kMaxIndirect)
        return make_error("indirect table of %u bytes is malformed", d->len);
      if (!mem.contains(GuestAddress(d->addr), d->len))
        return make_error("indirect table lies outside guest memory");
      uint32_t n = d->len / static_cast<uint32_t>(sizeof(Desc));
      uint32_t sub_budget = n;
      return walk(mem, GuestAddress(d->addr), n, 0, true, chain, sub_budget);
    }
    if (d->len > 0) {
      if (!mem.contains(GuestAddress(d->addr), d->len))
        return make_error("descriptor buffer 0x%llx+%u lies outside guest memory",
                          (unsigned long long)d->addr, d->len);
      Segment seg{GuestAddress(d->addr), d->len};
      if (d->flags & kDescFWrite) {
        chain.writable.push_back(seg);
      } else {
        if (!chain.writable.empty())
          return make_error("device-readable descriptor after a device-writable one");
        chain.readable.push_back(seg);
      }
    }
    if (!(d->flags & kDescFNext)) return {};
    index = d->next;
  }
}

Result<uint16_t> Queue::avail_index(const GuestMemory& mem) const {
  if (size == 0) return make_error("queue used before it was set up");
  return mem.read_obj<uint16_t>(GuestAddress(avail_ring.value + kAvailIdx));
}

Status Queue::notify_on_next_post(GuestMemory& mem) {
  if (!event_idx) return {};
  auto idx = avail_index(mem);
  if (!idx) return idx.error();
  return mem.write_obj(GuestAddress(used_ring.value + kUsedRing + uint64_t{size} * kUsedElem), *idx);
}

Result<std::optional<DescriptorChain>> Queue::pop(GuestMemory& mem) {
  if (size == 0) return make_error("queue used before it was set up");
  auto avail_idx = mem.read_obj<uint16_t>(GuestAddress(avail_ring.value + kAvailIdx));
  if (!avail_idx) return avail_idx.error();
  uint16_t pending = static_cast<uint16_t>(*avail_idx - next_avail_);
  if (pending > size)
    return make_error("driver's available index moved %u entries ahead on a queue of %u", pending, size);
  if (pending == 0) return std::optional<DescriptorChain>();
  // Ring entries and descriptors must be read after the index that published them.
  std::atomic_thread_fence(std::memory_order_acquire);
  auto head = mem.read_obj<uint16_t>(
      GuestAddress(avail_ring.value + kAvailRing + static_cast<uint64_t>(next_avail_ % size) * 2));
  if (!head) return head.error();
  DescriptorChain chain;
  chain.head = *head;
  uint32_t budget = size;
  if (auto s = walk(mem, desc_table, size, *head, false, chain, budget); !s) return s.error();
  ++next_avail_;
  if (event_idx) {
    // avail_event: ask the driver to notify again once it posts past what we consumed.
    auto s = mem.write_obj(GuestAddress(used_ring.value + kUsedRing + uint64_t{size} * kUsedElem),
                           next_avail_);
    if (!s) return s.error();
  }
  return std::optional<DescriptorChain>(std::move(chain));
}

Status Queue::add_used(GuestMemory& mem, uint16_t head, uint32_t len) {
  if (head >= size) return make_error("used head %u out of range", head);  // also size == 0
  struct {
    uint32_t id, len;
  } elem{head, len};
  auto at = GuestAddress(used_ring.value + kUsedRing + static_cast<uint64_t>(next_used_ % size) * kUsedElem);
  if (auto s = mem.write_obj(at, elem); !s) return s;
  ++next_used_;
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  return mem.write_obj(GuestAddress(used_ring.value + kUsedIdx), next_used_);
}

Result<bool> Queue::needs_notification(const GuestMemory& mem) {
  // Our used-index store must be ordered before reading the driver's suppression state.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!event_idx) {
    auto flags = mem.read_obj<uint16_t>(avail_ring);
    if (!flags) return flags.error();
    return !(*flags & kAvailFNoInterrupt);
  }
  auto used_event =
      mem.read_obj<uint16_t>(GuestAddress(avail_ring.value + kAvailRing + uint64_t{size} * 2));
  if (!used_event) return used_event.error();
  uint16_t old = signalled_used_, now = next_used_;
  bool first = !signalled_valid_;
  signalled_used_ = now;
  signalled_valid_ = true;
  if (first) return now != 0;
  // vring_need_event(): did we cross used_event since the last notification?
  return static_cast<uint16_t>(now - *used_event - 1) < static_cast<uint16_t>(now - old);
}

}  // namespace husk::virtio
