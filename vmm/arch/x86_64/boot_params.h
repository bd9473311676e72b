// The Linux x86 "zero page" (struct boot_params) for the 64-bit boot protocol, the e820 map, and
// the PVH start info for kernels entered through their PVH note.
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "vmm/memory/guest_memory.h"

namespace husk::x86 {

struct InitrdPlacement {
  uint64_t addr;
  uint64_t size;
};

struct E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;  // 1 RAM, 2 reserved
  bool operator==(const E820Entry&) const = default;
};

// RAM as the guest should see it: the first region loses the EBDA/ISA hole (0x9fc00-0x100000,
// where the MP table lives), every other region is RAM as is.
std::vector<E820Entry> e820_map(const std::vector<RamRegion>& ram);

// Builds boot_params for the 64-bit boot protocol (no setup header from a bzImage is involved:
// the fields a loader must fill are set here).
Result<boot_params> make_boot_params(const std::vector<RamRegion>& ram, uint64_t cmdline_addr,
                                     uint32_t cmdline_size,
                                     const std::optional<InitrdPlacement>& initrd);

// Writes the NUL-terminated command line at layout::kCmdline.
Status write_cmdline(GuestMemory& mem, const std::string& cmdline);

// Writes hvm_start_info (+ memory map and initrd module) at layout::kPvhStartInfo.
Status write_pvh_start_info(GuestMemory& mem, const std::vector<RamRegion>& ram,
                            const std::optional<InitrdPlacement>& initrd);

}  // namespace husk::x86
