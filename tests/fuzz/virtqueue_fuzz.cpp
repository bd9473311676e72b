// libFuzzer target: a hostile driver controls all of guest memory (rings, descriptors,
// indirect tables) and the queue registers; the device pops, serves and returns chains until
// the queue is empty or reported broken. Must never crash, hang or touch memory outside.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "vmm/virtio/queue.h"

using husk::GuestAddress;
using husk::GuestMemory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kMem = 0x10000;
  if (size < 16) return 0;
  static GuestMemory mem = GuestMemory::create({{GuestAddress(0), kMem}}).value();
  auto all = mem.slice(GuestAddress(0), kMem).value();
  std::memset(all.data(), 0, kMem);
  // Header: queue size, ring addresses (kept inside or just around memory), event idx.
  husk::virtio::Queue q(256);
  uint16_t raw_size;
  std::memcpy(&raw_size, data, 2);
  q.size = raw_size;
  q.desc_table = GuestAddress((uint64_t{data[2]} << 8) * 16);
  q.avail_ring = GuestAddress((uint64_t{data[3]} << 8) * 2 + data[4]);
  q.used_ring = GuestAddress((uint64_t{data[5]} << 8) * 4 + data[6]);
  q.event_idx = data[7] & 1;
  q.ready = true;
  std::memcpy(all.data(), data + 16, std::min<size_t>(size - 16, kMem));
  if (!q.validate(mem)) return 0;
  for (int i = 0; i < 512; ++i) {
    auto c = q.pop(mem);
    if (!c || !*c) break;
    for (const auto& s : (*c)->writable)
      if (!mem.contains(s.addr, s.len)) abort();
    for (const auto& s : (*c)->readable)
      if (!mem.contains(s.addr, s.len)) abort();
    if (!q.add_used(mem, (*c)->head, 0)) break;
  }
  (void)q.needs_notification(mem);
  return 0;
}
