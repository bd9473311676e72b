// Split virtqueue (virtio 1.x, section 2.7) as the device sees it. Knows nothing of any device
// type. Everything it reads from the guest is validated once and copied: a chain is returned
// as a list of checked guest segments, so device code never touches a raw descriptor.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/result.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/snapshot/format.h"

namespace husk::virtio {

constexpr uint16_t kDescFNext = 1;
constexpr uint16_t kDescFWrite = 2;
constexpr uint16_t kDescFIndirect = 4;
constexpr uint16_t kAvailFNoInterrupt = 1;

// A split ring's descriptor as it lies in memory (virtio 1.x, 2.7.5).
struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);

struct Segment {
  GuestAddress addr;
  uint32_t len;
};

struct DescriptorChain {
  uint16_t head = 0;
  std::vector<Segment> readable;  // driver -> device, in order
  std::vector<Segment> writable;  // device -> driver, in order, all after the readable ones
  uint64_t readable_bytes() const;
  uint64_t writable_bytes() const;
};

class Queue {
 public:
  explicit Queue(uint16_t max_size) : max_size_(max_size) {}

  // Driver-programmed configuration (through the transport).
  uint16_t max_size() const { return max_size_; }
  uint16_t size = 0;
  bool ready = false;
  GuestAddress desc_table, avail_ring, used_ring;
  bool event_idx = false;  // VIRTIO_RING_F_EVENT_IDX negotiated

  // Checks size and ring placement before the queue is used (at DRIVER_OK).
  Status validate(const GuestMemory& mem) const;

  // The next available chain, nothing when the driver has posted none, or an error when the
  // driver broke the protocol (the device must then stop using this queue).
  Result<std::optional<DescriptorChain>> pop(GuestMemory& mem);
  // The driver's available index: how many chains it has posted, ever (mod 2^16).
  Result<uint16_t> avail_index(const GuestMemory& mem) const;
  // With EVENT_IDX, the driver notifies only when its index passes what we last consumed; this
  // asks for a notification at its next post even though we consume nothing.
  Status notify_on_next_post(GuestMemory& mem);
  // Returns a chain to the driver with `len` bytes written into it.
  Status add_used(GuestMemory& mem, uint16_t head, uint32_t len);
  // Whether the driver wants an interrupt for what was added since the last notification.
  Result<bool> needs_notification(const GuestMemory& mem);

  void reset();

  // Snapshots: the driver's configuration and the device's ring positions.
  void save(snapshot::Writer& w) const;
  void restore(snapshot::Reader& r);

 private:
  Status walk(const GuestMemory& mem, GuestAddress table, uint32_t count, uint16_t index,
              bool indirect, DescriptorChain& chain, uint32_t& budget) const;

  uint16_t max_size_;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;
  bool signalled_valid_ = false;
};

}  // namespace husk::virtio
