#include "vmm/arch/x86_64/cpu_state.h"

#include <cstring>

#include "vmm/arch/x86_64/layout.h"

namespace husk::x86 {
namespace {
constexpr uint64_t kPtePresent = 1, kPteWrite = 2, kPtePageSize = 0x80;
constexpr uint64_t kCr0Pe = 1, kCr0Et = 1 << 4, kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1 << 5;
constexpr uint64_t kEferLme = 1 << 8, kEferLma = 1 << 10;

constexpr uint32_t kMsrSysenterCs = 0x174, kMsrSysenterEsp = 0x175, kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrStar = 0xc0000081, kMsrLstar = 0xc0000082, kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084, kMsrKernelGsBase = 0xc0000102;
constexpr uint32_t kMsrTsc = 0x10, kMsrMiscEnable = 0x1a0, kMsrMtrrDefType = 0x2ff;
constexpr uint64_t kMiscEnableFastString = 1;
constexpr uint64_t kMtrrEnable = 1 << 11, kMtrrTypeWb = 6;

kvm_segment segment_from_gdt(uint64_t entry, uint16_t selector) {
  kvm_segment s{};
  s.base = ((entry >> 16) & 0xffffff) | (((entry >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((entry & 0xffff) | (((entry >> 48) & 0xf) << 16));
  s.g = (entry >> 55) & 1;
  // KVM takes the limit in bytes: scale page-granular limits.
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.selector = selector;
  s.type = (entry >> 40) & 0xf;
  s.present = (entry >> 47) & 1;
  s.dpl = (entry >> 45) & 3;
  s.db = (entry >> 54) & 1;
  s.s = (entry >> 44) & 1;
  s.l = (entry >> 53) & 1;
  s.avl = (entry >> 52) & 1;
  s.unusable = s.present ? 0 : 1;
  return s;
}

// Descriptor flags in the layout gdt_entry() expects (high nibble: G, D/B, L, AVL; low byte:
// P, DPL, S, type).
constexpr uint16_t kCode64 = 0xa09b;  // G, L, present, code exec/read accessed
constexpr uint16_t kCode32 = 0xc09b;  // G, D, present, code
constexpr uint16_t kData = 0xc093;    // G, D/B, present, data read/write accessed
constexpr uint16_t kTss = 0x808b;     // G, present, 64-bit busy TSS
}  // namespace

uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((uint64_t{base} & 0xff000000) << 32) | ((uint64_t{flags} & 0xf0ff) << 40) |
         ((uint64_t{limit} & 0xf0000) << 32) | ((uint64_t{base} & 0x00ffffff) << 16) |
         (uint64_t{limit} & 0xffff);
}

Status write_page_tables(GuestMemory& mem) {
  if (auto s = mem.write_obj(GuestAddress(layout::kPml4), layout::kPdpt | kPtePresent | kPteWrite); !s)
    return s;
  for (uint64_t i = 0; i < 4; ++i) {
    uint64_t pd = layout::kPd + i * 0x1000;
    if (auto s = mem.write_obj(GuestAddress(layout::kPdpt + i * 8), pd | kPtePresent | kPteWrite); !s)
      return s;
    uint64_t entries[512];
    for (uint64_t j = 0; j < 512; ++j)
      entries[j] = ((i * 512 + j) << 21) | kPtePresent | kPteWrite | kPtePageSize;
    if (auto s = mem.write_obj(GuestAddress(pd), entries); !s) return s;
  }
  return {};
}

namespace {
uint64_t gdt_table(int index) {
  switch (index) {
    case 2: return gdt_entry(kCode64, 0, 0xfffff);
    case 3: return gdt_entry(kData, 0, 0xfffff);
    case 4: return gdt_entry(kTss, 0, 0xfffff);
    default: return 0;
  }
}
}  // namespace

Status write_gdt(GuestMemory& mem) {
  uint64_t gdt[5];
  for (int i = 0; i < 5; ++i) gdt[i] = gdt_table(i);
  if (auto s = mem.write_obj(GuestAddress(layout::kGdt), gdt); !s) return s;
  return mem.write_obj(GuestAddress(layout::kIdt), uint64_t{0});
}

kvm_sregs boot_sregs(kvm_sregs sregs, EntryMode mode) {
  bool long64 = mode == EntryMode::kLong64;
  uint64_t code = long64 ? gdt_table(2) : gdt_entry(kCode32, 0, 0xfffff);
  sregs.cs = segment_from_gdt(code, kBootCs);
  kvm_segment data = segment_from_gdt(gdt_table(3), kBootDs);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = segment_from_gdt(gdt_table(4), kBootTss);
  sregs.gdt.base = layout::kGdt;
  sregs.gdt.limit = 5 * 8 - 1;
  sregs.idt.base = layout::kIdt;
  sregs.idt.limit = 7;
  if (long64) {
    sregs.cr3 = layout::kPml4;
    sregs.cr4 |= kCr4Pae;
    sregs.cr0 |= kCr0Pe | kCr0Et | kCr0Pg;
    sregs.efer |= kEferLme | kEferLma;
  } else {
    // PVH: 32-bit protected mode, paging off (the kernel's PVH stub builds its own tables).
    sregs.cr0 = (sregs.cr0 | kCr0Pe | kCr0Et) & ~kCr0Pg;
    sregs.cr4 = 0;
    sregs.efer = 0;
  }
  return sregs;
}

kvm_regs boot_regs(uint64_t entry, uint64_t boot_info, EntryMode mode) {
  kvm_regs r{};
  r.rflags = 2;  // bit 1 is reserved and must be set
  r.rip = entry;
  if (mode == EntryMode::kLong64) {
    r.rsp = r.rbp = layout::kBootStack;
    r.rsi = boot_info;
  } else {
    r.rbx = boot_info;
  }
  return r;
}

kvm_fpu boot_fpu() {
  kvm_fpu f{};
  f.fcw = 0x37f;     // x87 default control word
  f.mxcsr = 0x1f80;  // SSE exceptions masked
  return f;
}

std::vector<kvm_msr_entry> boot_msrs() {
  auto e = [](uint32_t index, uint64_t data) {
    kvm_msr_entry m{};
    m.index = index;
    m.data = data;
    return m;
  };
  return {e(kMsrSysenterCs, 0),     e(kMsrSysenterEsp, 0),    e(kMsrSysenterEip, 0),
          e(kMsrStar, 0),           e(kMsrCstar, 0),          e(kMsrKernelGsBase, 0),
          e(kMsrSyscallMask, 0),    e(kMsrLstar, 0),          e(kMsrTsc, 0),
          e(kMsrMiscEnable, kMiscEnableFastString),
          e(kMsrMtrrDefType, kMtrrEnable | kMtrrTypeWb)};
}

}  // namespace husk::x86
