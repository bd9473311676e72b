#include "vmm/arch/x86_64/cpu_state.h"

#include <gtest/gtest.h>

#include "vmm/arch/x86_64/layout.h"

namespace husk::x86 {
namespace {

TEST(PageTables, IdentityMapFirstFourGiBWithLargePages) {
  auto mem = GuestMemory::create(layout::ram_regions(64ull << 20));
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(write_page_tables(*mem).ok());
  auto pml4 = mem->read_obj<uint64_t>(GuestAddress(layout::kPml4)).value();
  EXPECT_EQ(pml4 & ~0xfffull, layout::kPdpt);
  EXPECT_EQ(pml4 & 3, 3u);
  // Walk a few addresses the way the MMU would.
  for (uint64_t va : {0x0ull, 0x1000000ull, 0x3fe00000ull, 0xfee00000ull, 0xffe00000ull}) {
    uint64_t pdpte = mem->read_obj<uint64_t>(GuestAddress(layout::kPdpt + ((va >> 30) & 511) * 8)).value();
    ASSERT_EQ(pdpte & 1, 1u) << va;
    uint64_t pde = mem->read_obj<uint64_t>(GuestAddress((pdpte & ~0xfffull) + ((va >> 21) & 511) * 8)).value();
    EXPECT_EQ(pde & 0x83, 0x83u) << va;  // present, writable, 2 MiB
    EXPECT_EQ(pde & ~0x1fffffull, va & ~0x1fffffull) << va;
  }
}

TEST(Gdt, EntriesEncodeFlatSegments) {
  EXPECT_EQ(gdt_entry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffull);
  EXPECT_EQ(gdt_entry(0xc093, 0, 0xfffff), 0x00cf93000000ffffull);
  EXPECT_EQ(gdt_entry(0x808b, 0, 0xfffff), 0x008f8b000000ffffull);
}

TEST(Sregs, LongModeEntryFollowsTheBootProtocol) {
  kvm_sregs s = boot_sregs(kvm_sregs{}, EntryMode::kLong64);
  EXPECT_EQ(s.cs.selector, kBootCs);
  EXPECT_EQ(s.ds.selector, kBootDs);
  EXPECT_EQ(s.ss.selector, kBootDs);
  EXPECT_EQ(s.cs.l, 1);
  EXPECT_EQ(s.cs.db, 0);
  EXPECT_EQ(s.cs.limit, 0xffffffffu);
  EXPECT_EQ(s.cr3, layout::kPml4);
  EXPECT_TRUE(s.cr0 & 1);
  EXPECT_TRUE(s.cr0 & (1ull << 31));
  EXPECT_TRUE(s.cr4 & (1 << 5));
  EXPECT_EQ(s.efer & 0x500, 0x500u);
  EXPECT_EQ(s.gdt.base, layout::kGdt);
  EXPECT_EQ(s.tr.type, 0xb);
}

TEST(Sregs, PvhEntryIsFlat32BitWithoutPaging) {
  kvm_sregs s = boot_sregs(kvm_sregs{}, EntryMode::kProtected32);
  EXPECT_EQ(s.cs.l, 0);
  EXPECT_EQ(s.cs.db, 1);
  EXPECT_EQ(s.cr0 & (1ull << 31), 0u);
  EXPECT_EQ(s.efer, 0u);
}

TEST(Regs, BootInfoPointerInTheRightRegister) {
  kvm_regs r = boot_regs(0x1000000, layout::kZeroPage, EntryMode::kLong64);
  EXPECT_EQ(r.rip, 0x1000000u);
  EXPECT_EQ(r.rsi, layout::kZeroPage);
  EXPECT_EQ(r.rflags, 2u);
  kvm_regs p = boot_regs(0x1000040, layout::kPvhStartInfo, EntryMode::kProtected32);
  EXPECT_EQ(p.rbx, layout::kPvhStartInfo);
  EXPECT_EQ(p.rsi, 0u);
}

TEST(Msrs, LinuxExpectationsAreSet) {
  auto msrs = boot_msrs();
  auto find = [&](uint32_t i) -> const kvm_msr_entry* {
    for (const auto& m : msrs)
      if (m.index == i) return &m;
    return nullptr;
  };
  ASSERT_NE(find(0x1a0), nullptr);
  EXPECT_EQ(find(0x1a0)->data & 1, 1u);  // fast strings
  ASSERT_NE(find(0x2ff), nullptr);
  EXPECT_EQ(find(0x2ff)->data, (1u << 11) | 6u);  // MTRRs on, write-back default
  EXPECT_NE(find(0xc0000082), nullptr);       // LSTAR
  EXPECT_EQ(boot_fpu().fcw, 0x37f);
}

}  // namespace
}  // namespace husk::x86
