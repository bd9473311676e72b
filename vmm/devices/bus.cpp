#include "vmm/devices/bus.h"

#include <algorithm>

namespace husk {

Status Bus::insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev) {
  uint64_t end;
  if (len == 0 || __builtin_add_overflow(base, len, &end))
    return make_error("bus range 0x%llx+0x%llx is invalid", (unsigned long long)base,
                      (unsigned long long)len);
  for (const auto& e : entries_)
    if (base < e.base + e.len && e.base < end)
      return make_error("bus range 0x%llx+0x%llx overlaps a device at 0x%llx",
                        (unsigned long long)base, (unsigned long long)len,
                        (unsigned long long)e.base);
  auto it = std::lower_bound(entries_.begin(), entries_.end(), base,
                             [](const Entry& e, uint64_t b) { return e.base < b; });
  entries_.insert(it, Entry{base, len, std::move(dev)});
  return {};
}

const Bus::Entry* Bus::find(uint64_t addr, uint64_t len) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                             [](uint64_t a, const Entry& e) { return a < e.base; });
  if (it == entries_.begin()) return nullptr;
  --it;
  uint64_t off = addr - it->base;
  // The whole access must fall inside the device: a guest straddling two ranges gets nothing.
  if (off >= it->len || len > it->len - off) return nullptr;
  return &*it;
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  const Entry* e = find(addr, data.size());
  if (!e) return false;
  e->dev->read(addr - e->base, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  const Entry* e = find(addr, data.size());
  if (!e) return false;
  e->dev->write(addr - e->base, data);
  return true;
}

}  // namespace husk
