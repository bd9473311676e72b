// libFuzzer target: the kernel image parser must reject or accept any bytes without crashing,
// and whatever it accepts must satisfy the invariants the loader relies on.
#include <cstdint>
#include <cstdlib>

#include "vmm/boot/elf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto img = husk::boot::parse_elf(std::span<const uint8_t>(data, size));
  if (!img) return 0;
  uint64_t prev_end = 0;
  bool entry_inside = false;
  for (const auto& s : img->segments) {
    if (s.filesz > s.memsz || s.offset + s.filesz > size || s.offset + s.filesz < s.offset) abort();
    if (s.paddr < prev_end) abort();  // sorted and non-overlapping
    prev_end = s.paddr + s.memsz;
    if (prev_end < s.paddr) abort();
    if (img->entry >= s.paddr && img->entry - s.paddr < s.memsz) entry_inside = true;
  }
  if (!entry_inside) abort();
  return 0;
}
