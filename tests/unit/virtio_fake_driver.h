// A fake virtio driver for unit tests: lays out a split virtqueue in (fake) guest memory and
// posts descriptor chains the way a guest driver would — or the way a hostile one would.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/memory/guest_memory.h"
#include "vmm/virtio/device.h"
#include "vmm/virtio/queue.h"

namespace husk::virtio::testing {

// What a device asked of its transport: interrupts and retries.
struct CountingNotifier : Notifier {
  int used = 0;
  uint64_t retry_ns = 0;
  void used_buffers() override { ++used; }
  void config_changed() override {}
  void retry_after(uint16_t, uint64_t ns) override { retry_ns = ns; }
};

struct Buf {
  uint64_t addr;
  uint32_t len;
  bool device_writes = false;
};

struct RawDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};

class FakeQueue {
 public:
  // Rings at fixed addresses: descriptors at 0x1000, avail at 0x2000, used at 0x3000, all
  // shifted by `base` (so a device's several queues do not overlap).
  static constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
  FakeQueue(GuestMemory& mem, uint16_t size, uint64_t base = 0)
      : mem_(mem), size_(size), desc_(kDesc + base), avail_(kAvail + base), used_(kUsed + base) {}

  void configure(Queue& q) const {
    q.size = size_;
    q.ready = true;
    q.desc_table = GuestAddress(desc_);
    q.avail_ring = GuestAddress(avail_);
    q.used_ring = GuestAddress(used_);
  }
  void set_desc(uint16_t i, RawDesc d) { (void)mem_.write_obj(GuestAddress(desc_ + i * 16ull), d); }
  // Posts `head` in the available ring and publishes it.
  void publish(uint16_t head) {
    (void)mem_.write_obj(GuestAddress(avail_ + 4 + (avail_idx_ % size_) * 2ull), head);
    ++avail_idx_;
    (void)mem_.write_obj(GuestAddress(avail_ + 2), avail_idx_);
  }
  // Writes a well-formed chain of `bufs` starting at descriptor next_desc_ and posts it.
  uint16_t add_chain(const std::vector<Buf>& bufs) {
    uint16_t head = next_desc_;
    for (size_t i = 0; i < bufs.size(); ++i) {
      uint16_t idx = static_cast<uint16_t>((next_desc_ + i) % size_);
      uint16_t flags = static_cast<uint16_t>((bufs[i].device_writes ? kDescFWrite : 0) |
                                             (i + 1 < bufs.size() ? kDescFNext : 0));
      set_desc(idx, RawDesc{bufs[i].addr, bufs[i].len, flags, static_cast<uint16_t>((idx + 1) % size_)});
    }
    next_desc_ = static_cast<uint16_t>((next_desc_ + bufs.size()) % size_);
    publish(head);
    return head;
  }
  void set_avail_idx(uint16_t v) {
    avail_idx_ = v;
    (void)mem_.write_obj(GuestAddress(avail_ + 2), v);
  }
  void set_avail_flags(uint16_t f) { (void)mem_.write_obj(GuestAddress(avail_), f); }
  void set_used_event(uint16_t v) { (void)mem_.write_obj(GuestAddress(avail_ + 4 + size_ * 2ull), v); }
  uint16_t used_idx() const { return mem_.read_obj<uint16_t>(GuestAddress(used_ + 2)).value(); }
  uint16_t avail_event() const { return mem_.read_obj<uint16_t>(GuestAddress(used_ + 4 + size_ * 8ull)).value(); }
  std::pair<uint32_t, uint32_t> used(uint16_t i) const {
    uint64_t at = used_ + 4 + (i % size_) * 8ull;
    return {mem_.read_obj<uint32_t>(GuestAddress(at)).value(),
            mem_.read_obj<uint32_t>(GuestAddress(at + 4)).value()};
  }

 private:
  GuestMemory& mem_;
  uint16_t size_;
  uint64_t desc_, avail_, used_;
  uint16_t avail_idx_ = 0;
  uint16_t next_desc_ = 0;
};

}  // namespace husk::virtio::testing
