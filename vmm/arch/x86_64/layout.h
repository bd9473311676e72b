// Guest physical memory map of an x86_64 husk VM. Low addresses follow the Linux boot protocol
// and Firecracker's choices (so tools written for Firecracker's guest layout keep working, such
// as the boot timer at the start of the MMIO gap).
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/memory/guest_memory.h"

namespace husk::x86::layout {

constexpr uint64_t kGdt = 0x500;
constexpr uint64_t kIdt = 0x520;
constexpr uint64_t kZeroPage = 0x7000;  // struct boot_params
constexpr uint64_t kBootStack = 0x8ff0;
constexpr uint64_t kPml4 = 0x9000;
constexpr uint64_t kPdpt = 0xa000;
constexpr uint64_t kPd = 0xb000;         // 4 page directories: identity map of 4 GiB
constexpr uint64_t kPvhStartInfo = 0x6000;
constexpr uint64_t kCmdline = 0x20000;
constexpr uint64_t kCmdlineMax = 0x10000;  // includes the terminating NUL
constexpr uint64_t kEbda = 0x9fc00;        // MP table lives here (reserved in e820)
constexpr uint64_t kHimem = 0x100000;      // first byte of RAM above the ISA hole
constexpr uint64_t kMmioGapStart = 0xd0000000;  // 768 MiB below 4 GiB for device MMIO
constexpr uint64_t kMmioGapEnd = 0x100000000;
constexpr uint64_t kBootTimer = kMmioGapStart;  // Firecracker-compatible boot timer address
constexpr uint64_t kVirtioMmioBase = kMmioGapStart + 0x1000;
constexpr uint64_t kIoapic = 0xfec00000;
constexpr uint64_t kLapic = 0xfee00000;
constexpr uint64_t kTssAddr = 0xfffbd000;       // KVM_SET_TSS_ADDR (3 pages, VMX only)
constexpr uint64_t kIdentityMapAddr = 0xfffbc000;

// RAM regions for a guest of `bytes` bytes: below the MMIO gap, the rest above 4 GiB.
std::vector<RamRegion> ram_regions(uint64_t bytes);

}  // namespace husk::x86::layout
