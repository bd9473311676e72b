// Split virtqueue (virtio 1.x section 2.7) against a fake driver, including every malformed
// queue a hostile guest can build.
#include "vmm/virtio/queue.h"

#include <gtest/gtest.h>

#include "tests/unit/virtio_fake_driver.h"

namespace husk::virtio {
namespace {

using testing::Buf;
using testing::FakeQueue;
using testing::RawDesc;

struct QueueTest : ::testing::Test {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x100000}}).value();
  FakeQueue driver{mem, 16};
  Queue q{256};
  void SetUp() override { driver.configure(q); }
  std::string pop_error() {
    auto r = q.pop(mem);
    return r.ok() ? std::string() : r.error().message;
  }
};

TEST_F(QueueTest, S2_7_PopsChainsInOrderSplitByDirection) {
  driver.add_chain({{0x10000, 16}, {0x10010, 512}, {0x20000, 1, true}});
  driver.add_chain({{0x30000, 100, true}});
  auto a = q.pop(mem);
  ASSERT_TRUE(a.ok() && *a) << (a.ok() ? "" : a.error().message);
  EXPECT_EQ((*a)->head, 0);
  ASSERT_EQ((*a)->readable.size(), 2u);
  EXPECT_EQ((*a)->readable_bytes(), 528u);
  EXPECT_EQ((*a)->writable_bytes(), 1u);
  auto b = q.pop(mem);
  ASSERT_TRUE(b.ok() && *b);
  EXPECT_EQ((*b)->head, 3);
  auto none = q.pop(mem);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(q.add_used(mem, 3, 7).ok());
  EXPECT_EQ(driver.used_idx(), 1);
  EXPECT_EQ(driver.used(0), (std::pair<uint32_t, uint32_t>{3, 7}));
}

TEST_F(QueueTest, S2_7_RingsWrapAroundTheSixteenBitIndex) {
  for (int i = 0; i < 70000; ++i) {
    driver.add_chain({{0x10000, 8, true}});
    auto c = q.pop(mem);
    ASSERT_TRUE(c.ok() && *c) << i;
    ASSERT_TRUE(q.add_used(mem, (*c)->head, 8).ok());
  }
  EXPECT_EQ(driver.used_idx(), static_cast<uint16_t>(70000));
}

TEST_F(QueueTest, RejectsHeadIndexOutOfRange) {
  driver.publish(16);
  EXPECT_NE(pop_error().find("out of range"), std::string::npos);
}

TEST_F(QueueTest, RejectsDescriptorLoops) {
  driver.set_desc(0, RawDesc{0x10000, 8, kDescFNext, 1});
  driver.set_desc(1, RawDesc{0x10008, 8, kDescFNext, 0});
  driver.publish(0);
  EXPECT_NE(pop_error().find("loop"), std::string::npos);
}

TEST_F(QueueTest, RejectsBuffersOutsideGuestMemory) {
  driver.add_chain({{0xff000, 0x2000}});
  EXPECT_NE(pop_error().find("outside guest memory"), std::string::npos);
  FakeQueue d2(mem, 16);
  Queue q2(256);
  d2.configure(q2);
  d2.set_desc(0, RawDesc{~0ull - 4, 16, 0, 0});  // address + length overflows
  d2.publish(0);
  EXPECT_FALSE(q2.pop(mem).ok());
}

TEST_F(QueueTest, RejectsReadableAfterWritable) {
  driver.add_chain({{0x10000, 8, true}, {0x10008, 8}});
  EXPECT_NE(pop_error().find("after a device-writable"), std::string::npos);
}

TEST_F(QueueTest, RejectsAvailIndexJumpingPastTheQueue) {
  driver.set_avail_idx(17);
  EXPECT_NE(pop_error().find("ahead"), std::string::npos);
}

TEST_F(QueueTest, S2_7_5_3_IndirectDescriptors) {
  // An indirect table at 0x40000 with two descriptors: readable then writable.
  (void)mem.write_obj(GuestAddress(0x40000), RawDesc{0x10000, 16, kDescFNext, 1});
  (void)mem.write_obj(GuestAddress(0x40010), RawDesc{0x20000, 4, kDescFWrite, 0});
  driver.set_desc(0, RawDesc{0x40000, 32, kDescFIndirect, 0});
  driver.publish(0);
  auto c = q.pop(mem);
  ASSERT_TRUE(c.ok() && *c) << (c.ok() ? "" : c.error().message);
  EXPECT_EQ((*c)->readable_bytes(), 16u);
  EXPECT_EQ((*c)->writable_bytes(), 4u);
}

TEST_F(QueueTest, RejectsMalformedIndirectTables) {
  struct Case {
    RawDesc outer;
    RawDesc inner;
    const char* why;
  } cases[] = {
      {{0x40000, 20, kDescFIndirect, 0}, {0x10000, 8, 0, 0}, "malformed"},         // len % 16
      {{0x40000, 0, kDescFIndirect, 0}, {0x10000, 8, 0, 0}, "malformed"},          // empty
      {{0x40000, 16, kDescFIndirect | kDescFNext, 1}, {0x10000, 8, 0, 0}, "NEXT"},  // both flags
      {{0x40000, 16, kDescFIndirect, 0}, {0x50000, 16, kDescFIndirect, 0}, "nested"},
      {{0xffff0, 32, kDescFIndirect, 0}, {0x10000, 8, 0, 0}, "outside"},
      {{0x40000, 16, kDescFIndirect, 0}, {0x10000, 8, kDescFNext, 5}, "out of range"},
  };
  for (const auto& c : cases) {
    GuestMemory m = GuestMemory::create({{GuestAddress(0), 0x100000}}).value();
    FakeQueue d(m, 16);
    Queue qq(256);
    d.configure(qq);
    (void)m.write_obj(GuestAddress(0x40000), c.inner);
    d.set_desc(0, c.outer);
    d.publish(0);
    auto r = qq.pop(m);
    ASSERT_FALSE(r.ok()) << c.why;
    EXPECT_NE(r.error().message.find(c.why), std::string::npos) << r.error().message;
  }
}

TEST_F(QueueTest, ValidateChecksSizeAlignmentAndPlacement) {
  EXPECT_TRUE(q.validate(mem).ok());
  Queue bad(256);
  driver.configure(bad);
  bad.size = 12;
  EXPECT_FALSE(bad.validate(mem).ok());
  bad.size = 512;  // above max
  EXPECT_FALSE(bad.validate(mem).ok());
  bad.size = 16;
  bad.desc_table = GuestAddress(0x1008);
  EXPECT_FALSE(bad.validate(mem).ok());
  bad.desc_table = GuestAddress(0xfffc0);
  EXPECT_FALSE(bad.validate(mem).ok());
}

TEST_F(QueueTest, S2_7_7_InterruptSuppressionWithoutEventIdx) {
  driver.add_chain({{0x10000, 8, true}});
  auto c = q.pop(mem);
  ASSERT_TRUE(q.add_used(mem, (*c)->head, 8).ok());
  EXPECT_TRUE(q.needs_notification(mem).value());
  driver.set_avail_flags(kAvailFNoInterrupt);
  EXPECT_FALSE(q.needs_notification(mem).value());
}

TEST_F(QueueTest, S2_7_10_EventIdx) {
  q.event_idx = true;
  for (int i = 0; i < 3; ++i) driver.add_chain({{0x10000, 8, true}});
  for (int i = 0; i < 3; ++i) {
    auto c = q.pop(mem);
    ASSERT_TRUE(q.add_used(mem, (*c)->head, 8).ok());
  }
  EXPECT_EQ(driver.avail_event(), 3);  // the device asks for a kick after entry 3
  driver.set_used_event(0);            // driver wants an interrupt after used entry 0
  EXPECT_TRUE(q.needs_notification(mem).value());
  driver.add_chain({{0x10000, 8, true}});
  auto c = q.pop(mem);
  ASSERT_TRUE(q.add_used(mem, (*c)->head, 8).ok());
  driver.set_used_event(10);  // not reached yet: no interrupt
  EXPECT_FALSE(q.needs_notification(mem).value());
}

}  // namespace
}  // namespace husk::virtio
