#include "vmm/devices/boot_timer.h"

#include <algorithm>

namespace husk {

void BootTimer::read(uint64_t, std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0); }

void BootTimer::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != 0 || data.empty() || data[0] != kMagic || !on_boot_) return;
  std::call_once(once_, on_boot_);
}

}  // namespace husk
