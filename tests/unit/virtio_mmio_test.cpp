// virtio-mmio transport (spec 4.2) driven register by register like Linux's virtio_mmio driver,
// with virtio-rng behind it.
#include "vmm/virtio/transport/mmio.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/virtio_fake_driver.h"
#include "vmm/virtio/rng/rng.h"

namespace husk::virtio {
namespace {

using testing::FakeQueue;
using testing::RawDesc;

struct CountingIrq : Interrupt {
  int count = 0;
  void trigger() override { ++count; }
};

enum : uint32_t { kAck = 1, kDrv = 2, kDrvOk = 4, kFeatOk = 8, kNeedsReset = 64 };

struct MmioTest : ::testing::Test {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x100000}}).value();
  std::shared_ptr<CountingIrq> irq = std::make_shared<CountingIrq>();
  MmioTransport t{std::make_shared<Rng>(), mem, irq};
  FakeQueue driver{mem, 16};

  uint32_t rd(uint64_t off) {
    uint32_t v;
    t.read(off, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void wr(uint64_t off, uint32_t v) {
    t.write(off, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  uint64_t device_features() {
    wr(0x14, 0);
    uint64_t lo = rd(0x10);
    wr(0x14, 1);
    return lo | (uint64_t{rd(0x10)} << 32);
  }
  void driver_features(uint64_t f) {
    wr(0x24, 0), wr(0x20, static_cast<uint32_t>(f));
    wr(0x24, 1), wr(0x20, static_cast<uint32_t>(f >> 32));
  }
  // The Linux driver's probe sequence up to DRIVER_OK.
  void bring_up(uint64_t features) {
    wr(0x70, 0);
    wr(0x70, kAck);
    wr(0x70, kAck | kDrv);
    driver_features(features);
    wr(0x70, kAck | kDrv | kFeatOk);
    ASSERT_TRUE(rd(0x70) & kFeatOk);
    wr(0x30, 0);
    ASSERT_EQ(rd(0x34), 256u);
    wr(0x38, 16);
    wr(0x80, FakeQueue::kDesc), wr(0x84, 0);
    wr(0x90, FakeQueue::kAvail), wr(0x94, 0);
    wr(0xa0, FakeQueue::kUsed), wr(0xa4, 0);
    wr(0x44, 1);
    wr(0x70, kAck | kDrv | kFeatOk | kDrvOk);
  }
};

TEST_F(MmioTest, S4_2_2_IdentityRegisters) {
  EXPECT_EQ(rd(0x000), 0x74726976u);  // "virt"
  EXPECT_EQ(rd(0x004), 2u);           // modern transport
  EXPECT_EQ(rd(0x008), 4u);           // entropy device
  EXPECT_TRUE(device_features() & kFVersion1);
  EXPECT_TRUE(device_features() & kFRingEventIdx);
}

TEST_F(MmioTest, S3_1_FeaturesOkRefusedWithoutVersion1OrWithUnknownBits) {
  wr(0x70, kAck | kDrv);
  driver_features(0);  // legacy driver
  wr(0x70, kAck | kDrv | kFeatOk);
  EXPECT_FALSE(rd(0x70) & kFeatOk);
  wr(0x70, 0);
  wr(0x70, kAck | kDrv);
  driver_features(kFVersion1 | (1ull << 40));  // a bit the device never offered
  wr(0x70, kAck | kDrv | kFeatOk);
  EXPECT_FALSE(rd(0x70) & kFeatOk);
}

TEST_F(MmioTest, S5_4_RequestIsServedAndInterruptRaised) {
  bring_up(kFVersion1);
  ASSERT_EQ(rd(0x70) & kDrvOk, kDrvOk);
  driver.add_chain({{0x10000, 64, true}, {0x10100, 32, true}});
  wr(0x50, 0);  // QueueNotify
  EXPECT_EQ(driver.used_idx(), 1);
  EXPECT_EQ(driver.used(0).second, 96u);
  EXPECT_EQ(irq->count, 1);
  EXPECT_EQ(rd(0x60) & 1, 1u);  // used-buffer interrupt pending
  wr(0x64, 1);                  // acknowledged
  EXPECT_EQ(rd(0x60), 0u);
  uint8_t zero[64] = {}, got[64];
  ASSERT_TRUE(mem.read(GuestAddress(0x10000), got).ok());
  EXPECT_NE(std::memcmp(zero, got, 64), 0);  // filled with random bytes
}

TEST_F(MmioTest, MalformedQueueMarksTheDeviceNeedsResetUntilReset) {
  bring_up(kFVersion1);
  driver.set_desc(0, RawDesc{0x10000, 8, 1 /*NEXT*/, 0});  // loops onto itself
  driver.publish(0);
  wr(0x50, 0);
  EXPECT_TRUE(rd(0x70) & kNeedsReset);
  EXPECT_EQ(rd(0x60) & 2, 2u);  // configuration-change interrupt
  EXPECT_EQ(irq->count, 1);
  driver.add_chain({{0x10000, 8, true}});
  wr(0x50, 0);  // ignored while broken
  EXPECT_EQ(driver.used_idx(), 0);
  // Reset and a fresh bring-up make the device usable again.
  wr(0x70, 0);
  EXPECT_EQ(rd(0x70), 0u);
  FakeQueue d2(mem, 16);
  for (uint16_t i = 0; i < 16; ++i) d2.set_desc(i, RawDesc{0, 0, 0, 0});
  (void)mem.fill(GuestAddress(FakeQueue::kAvail), 0x2000, 0);
  bring_up(kFVersion1);
  d2.add_chain({{0x10000, 8, true}});
  wr(0x50, 0);
  EXPECT_EQ(d2.used_idx(), 1);
}

TEST_F(MmioTest, QueueRingsOutsideMemoryFailActivation) {
  wr(0x70, kAck), wr(0x70, kAck | kDrv);
  driver_features(kFVersion1);
  wr(0x70, kAck | kDrv | kFeatOk);
  wr(0x38, 16);
  wr(0x80, 0xfffff000), wr(0x84, 0xff);  // far outside guest memory
  wr(0x44, 1);
  wr(0x70, kAck | kDrv | kFeatOk | kDrvOk);
  EXPECT_FALSE(rd(0x70) & kDrvOk);
  EXPECT_TRUE(rd(0x70) & kNeedsReset);
}

TEST_F(MmioTest, OddAccessesAreHarmless) {
  uint8_t b[2] = {1, 2};
  t.write(0x70, std::span<const uint8_t>(b, 2));  // 16-bit write to a 32-bit register
  EXPECT_EQ(rd(0x70), 0u);
  t.read(0x3, std::span<uint8_t>(b, 1));
  wr(0x30, 99);  // select a queue that does not exist
  EXPECT_EQ(rd(0x34), 0u);
  wr(0x38, 16);
  wr(0x50, 7);   // notify a queue that does not exist
  wr(0xf00, 1);  // device config: rng has none
  EXPECT_EQ(irq->count, 0);
}

}  // namespace
}  // namespace husk::virtio
