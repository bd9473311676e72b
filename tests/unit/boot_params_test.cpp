#include "vmm/arch/x86_64/boot_params.h"

#include <gtest/gtest.h>

#include "vmm/arch/x86_64/layout.h"

namespace husk::x86 {
namespace {

TEST(Layout, SplitsRamAroundTheMmioGap) {
  auto small = layout::ram_regions(256ull << 20);
  ASSERT_EQ(small.size(), 1u);
  EXPECT_EQ(small[0].size, 256ull << 20);
  auto big = layout::ram_regions(4ull << 30);
  ASSERT_EQ(big.size(), 2u);
  EXPECT_EQ(big[0].size, layout::kMmioGapStart);
  EXPECT_EQ(big[1].start.value, layout::kMmioGapEnd);
  EXPECT_EQ(big[0].size + big[1].size, 4ull << 30);
}

TEST(E820, ReservesTheEbdaAndIsaHoleAndKeepsHighRam) {
  auto map = e820_map(layout::ram_regions(4ull << 30));
  ASSERT_EQ(map.size(), 4u);
  EXPECT_EQ(map[0], (E820Entry{0, layout::kEbda, 1}));
  EXPECT_EQ(map[1], (E820Entry{layout::kEbda, layout::kHimem - layout::kEbda, 2}));
  EXPECT_EQ(map[2], (E820Entry{layout::kHimem, layout::kMmioGapStart - layout::kHimem, 1}));
  EXPECT_EQ(map[3], (E820Entry{layout::kMmioGapEnd, (4ull << 30) - layout::kMmioGapStart, 1}));
}

TEST(BootParams, FillsTheFieldsTheKernelReads) {
  auto ram = layout::ram_regions(512ull << 20);
  auto bp = make_boot_params(ram, layout::kCmdline, 100, InitrdPlacement{0x1f000000, 0x123456});
  ASSERT_TRUE(bp.ok());
  EXPECT_EQ(bp->hdr.boot_flag, 0xaa55);
  EXPECT_EQ(bp->hdr.header, 0x53726448u);
  EXPECT_EQ(bp->hdr.type_of_loader, 0xff);
  EXPECT_EQ(bp->hdr.cmd_line_ptr, layout::kCmdline);
  EXPECT_EQ(bp->hdr.cmdline_size, 100u);
  EXPECT_EQ(bp->hdr.ramdisk_image, 0x1f000000u);
  EXPECT_EQ(bp->hdr.ramdisk_size, 0x123456u);
  ASSERT_EQ(bp->e820_entries, 3);
  EXPECT_EQ(bp->e820_table[2].addr, layout::kHimem);
  EXPECT_EQ(bp->e820_table[2].size, (512ull << 20) - layout::kHimem);
  EXPECT_EQ(bp->e820_table[2].type, 1u);
  // Offsets are ABI: the kernel reads them by offset, not by our struct.
  EXPECT_EQ(offsetof(boot_params, e820_entries), 0x1e8u);
  EXPECT_EQ(offsetof(boot_params, hdr), 0x1f1u);
  EXPECT_EQ(offsetof(boot_params, e820_table), 0x2d0u);
}

TEST(BootParams, NoInitrdLeavesRamdiskZero) {
  auto bp = make_boot_params(layout::ram_regions(64ull << 20), layout::kCmdline, 1, std::nullopt);
  ASSERT_TRUE(bp.ok());
  EXPECT_EQ(bp->hdr.ramdisk_image, 0u);
  EXPECT_EQ(bp->hdr.ramdisk_size, 0u);
}

TEST(Cmdline, WrittenNulTerminatedAndBounded) {
  auto mem = GuestMemory::create(layout::ram_regions(16ull << 20));
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(write_cmdline(*mem, "console=ttyS0 quiet").ok());
  char buf[21];
  ASSERT_TRUE(mem->read(GuestAddress(layout::kCmdline), std::span<uint8_t>(reinterpret_cast<uint8_t*>(buf), 21)).ok());
  EXPECT_STREQ(buf, "console=ttyS0 quiet");
  EXPECT_FALSE(write_cmdline(*mem, std::string(layout::kCmdlineMax, 'a')).ok());
  EXPECT_FALSE(write_cmdline(*mem, std::string("a\0b", 3)).ok());
}

TEST(Pvh, StartInfoCarriesMagicMemmapAndModule) {
  auto ram = layout::ram_regions(64ull << 20);
  auto mem = GuestMemory::create(ram);
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(write_pvh_start_info(*mem, ram, InitrdPlacement{0x3000000, 0x1000}).ok());
  EXPECT_EQ(mem->read_obj<uint32_t>(GuestAddress(layout::kPvhStartInfo)).value(), 0x336ec578u);
  EXPECT_EQ(mem->read_obj<uint32_t>(GuestAddress(layout::kPvhStartInfo + 12)).value(), 1u);  // nr_modules
  EXPECT_EQ(mem->read_obj<uint32_t>(GuestAddress(layout::kPvhStartInfo + 48)).value(), 3u);  // memmap entries
}

}  // namespace
}  // namespace husk::x86
