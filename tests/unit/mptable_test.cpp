#include "vmm/arch/x86_64/mptable.h"

#include <gtest/gtest.h>

#include <cstring>

#include "vmm/arch/x86_64/layout.h"

namespace husk::x86 {
namespace {

uint8_t sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + p[i]);
  return s;
}

TEST(MpTable, ChecksumsAndEntryCounts) {
  for (unsigned cpus : {1u, 4u, 64u, kMaxVcpus}) {
    auto t = build_mptable(cpus, layout::kEbda);
    ASSERT_TRUE(t.ok());
    const uint8_t* p = t->data();
    EXPECT_EQ(std::memcmp(p, "_MP_", 4), 0);
    EXPECT_EQ(sum(p, 16), 0) << "floating pointer checksum";
    uint32_t physptr;
    std::memcpy(&physptr, p + 4, 4);
    EXPECT_EQ(physptr, layout::kEbda + 16);
    const uint8_t* h = p + 16;
    EXPECT_EQ(std::memcmp(h, "PCMP", 4), 0);
    uint16_t len, count;
    std::memcpy(&len, h + 4, 2);
    std::memcpy(&count, h + 34, 2);
    EXPECT_EQ(len + 16u, t->size());
    EXPECT_EQ(sum(h, len), 0) << "config table checksum";
    // cpus + bus + ioapic + 23 interrupts (IRQ 2 is the cascade) + 2 local interrupts
    EXPECT_EQ(count, cpus + 1 + 1 + 23 + 2);
    // Processor entries: enabled, APIC id = index, only CPU 0 is the BSP.
    const uint8_t* e = h + 44;
    for (unsigned i = 0; i < cpus; ++i, e += 20) {
      EXPECT_EQ(e[0], 0);
      EXPECT_EQ(e[1], i);
      EXPECT_EQ(e[3], i == 0 ? 3 : 1);
    }
    EXPECT_LE(layout::kEbda + t->size(), layout::kHimem);
  }
}

TEST(MpTable, TimerIsRoutedToPinTwo) {
  auto t = build_mptable(2, layout::kEbda);
  ASSERT_TRUE(t.ok());
  const uint8_t* e = t->data() + 16 + 44 + 2 * 20 + 8 + 8;  // first I/O interrupt entry
  EXPECT_EQ(e[0], 3);  // I/O interrupt
  EXPECT_EQ(e[5], 0);  // source IRQ 0
  EXPECT_EQ(e[7], 2);  // IOAPIC pin 2
}

TEST(MpTable, RejectsImpossibleCpuCounts) {
  EXPECT_FALSE(build_mptable(0, layout::kEbda).ok());
  EXPECT_FALSE(build_mptable(kMaxVcpus + 1, layout::kEbda).ok());
}

}  // namespace
}  // namespace husk::x86
