#include "vmm/devices/bus.h"

#include <gtest/gtest.h>

#include "vmm/devices/boot_timer.h"
#include "vmm/devices/i8042.h"

namespace husk {
namespace {

struct Recorder : BusDevice {
  uint64_t last_offset = ~0ull;
  uint8_t last_value = 0;
  void read(uint64_t offset, std::span<uint8_t> d) override {
    for (auto& b : d) b = static_cast<uint8_t>(offset);
  }
  void write(uint64_t offset, std::span<const uint8_t> d) override {
    last_offset = offset;
    last_value = d[0];
  }
};

TEST(Bus, DispatchesByRangeWithRelativeOffsets) {
  Bus bus;
  auto a = std::make_shared<Recorder>(), b = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.insert(0x3f8, 8, a).ok());
  ASSERT_TRUE(bus.insert(0x60, 5, b).ok());
  uint8_t v = 7;
  EXPECT_TRUE(bus.write(0x3fb, std::span<const uint8_t>(&v, 1)));
  EXPECT_EQ(a->last_offset, 3u);
  uint8_t r[2];
  EXPECT_TRUE(bus.read(0x64, std::span<uint8_t>(r, 1)));
  EXPECT_EQ(r[0], 4);
  EXPECT_FALSE(bus.read(0x400, std::span<uint8_t>(r, 1)));
  EXPECT_FALSE(bus.read(0x3ff, std::span<uint8_t>(r, 2)));  // straddles the end
  EXPECT_FALSE(bus.read(0, std::span<uint8_t>(r, 1)));
}

TEST(Bus, RejectsOverlapsAndEmptyRanges) {
  Bus bus;
  auto d = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.insert(0x100, 0x10, d).ok());
  EXPECT_FALSE(bus.insert(0x108, 0x10, d).ok());
  EXPECT_FALSE(bus.insert(0xf8, 0x10, d).ok());
  EXPECT_FALSE(bus.insert(0x200, 0, d).ok());
  EXPECT_FALSE(bus.insert(~0ull, 2, d).ok());
  EXPECT_TRUE(bus.insert(0x110, 0x10, d).ok());
}

TEST(I8042, ResetCommandAndIdleStatus) {
  int resets = 0;
  I8042 kbd([&] { ++resets; });
  uint8_t status = 0xff;
  kbd.read(4, std::span<uint8_t>(&status, 1));
  EXPECT_EQ(status, 0);  // input buffer empty: the guest's kb_wait() must not spin
  uint8_t cmd = 0xaa;
  kbd.write(4, std::span<const uint8_t>(&cmd, 1));
  EXPECT_EQ(resets, 0);
  cmd = 0xfe;
  kbd.write(0, std::span<const uint8_t>(&cmd, 1));  // data port: not a reset
  EXPECT_EQ(resets, 0);
  kbd.write(4, std::span<const uint8_t>(&cmd, 1));
  EXPECT_EQ(resets, 1);
}

TEST(BootTimer, FiresOnceOnTheMagicValue) {
  int fired = 0;
  BootTimer t([&] { ++fired; });
  uint8_t v = 12;
  t.write(0, std::span<const uint8_t>(&v, 1));
  v = 123;
  t.write(1, std::span<const uint8_t>(&v, 1));
  EXPECT_EQ(fired, 0);
  t.write(0, std::span<const uint8_t>(&v, 1));
  t.write(0, std::span<const uint8_t>(&v, 1));
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace husk
