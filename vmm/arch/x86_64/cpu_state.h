// Initial CPU state for a 64-bit Linux entry: identity page tables, GDT, long-mode segment
// registers, general registers, FPU and the MSRs a Linux guest expects. Pure functions over KVM
// structures so they are unit tested without /dev/kvm.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "vmm/memory/guest_memory.h"

namespace husk::x86 {

// GDT selectors required by the boot protocol: __BOOT_CS = 0x10, __BOOT_DS = 0x18.
constexpr uint16_t kBootCs = 0x10;
constexpr uint16_t kBootDs = 0x18;
constexpr uint16_t kBootTss = 0x20;

// Identity-maps the first 4 GiB with 2 MiB pages (PML4, PDPT, 4 PDs at layout::kPml4...).
Status write_page_tables(GuestMemory& mem);
// Writes the GDT (null, null, code, data, tss) and an empty IDT.
Status write_gdt(GuestMemory& mem);

// Encodes one 8-byte GDT descriptor.
uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);

enum class EntryMode { kLong64, kProtected32 };  // 64-bit boot protocol, or PVH

// Segment and control registers for entering at `mode`. Starts from what KVM_GET_SREGS returned.
kvm_sregs boot_sregs(kvm_sregs base, EntryMode mode);
// RIP at the entry point, RSI (64-bit) or RBX (PVH) at the boot info structure.
kvm_regs boot_regs(uint64_t entry, uint64_t boot_info, EntryMode mode);
kvm_fpu boot_fpu();
// The MSR values a freshly reset CPU has, as Linux expects them (fast strings on, MTRRs
// write-back by default so the guest does not run uncached).
std::vector<kvm_msr_entry> boot_msrs();

}  // namespace husk::x86
