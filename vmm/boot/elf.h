// Parsing of an x86_64 ELF kernel image (vmlinux). Pure: works on bytes, touches no guest
// memory, so it can be unit tested and fuzzed on hostile input.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/result.h"

namespace husk::boot {

struct ElfSegment {
  uint64_t paddr;   // guest physical load address
  uint64_t offset;  // offset in the file
  uint64_t filesz;  // bytes taken from the file
  uint64_t memsz;   // bytes in memory (the rest is zeroed)
};

struct ElfImage {
  uint64_t entry;                     // 64-bit boot protocol entry (physical)
  std::optional<uint32_t> pvh_entry;  // XEN_ELFNOTE_PHYS32_ENTRY, when the kernel has PVH
  std::vector<ElfSegment> segments;   // PT_LOAD segments, sorted by paddr, non-overlapping
};

// Validates everything a loader relies on: header, class, byte order, machine, program header
// table bounds, every PT_LOAD inside the file, filesz <= memsz, no address overflow, no two
// segments overlapping, entry inside a loaded segment.
Result<ElfImage> parse_elf(std::span<const uint8_t> file);

}  // namespace husk::boot
