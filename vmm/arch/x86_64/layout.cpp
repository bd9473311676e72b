#include "vmm/arch/x86_64/layout.h"

#include <algorithm>

namespace husk::x86::layout {

std::vector<RamRegion> ram_regions(uint64_t bytes) {
  std::vector<RamRegion> r;
  uint64_t low = std::min(bytes, kMmioGapStart);
  r.push_back(RamRegion{GuestAddress(0), low});
  if (bytes > low) r.push_back(RamRegion{GuestAddress(kMmioGapEnd), bytes - low});
  return r;
}

}  // namespace husk::x86::layout
