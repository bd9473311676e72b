// Snapshot building blocks without KVM: the state file format, guest memory files, and virtio
// transports (with their queues) saved and restored into new devices.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/unit/virtio_fake_driver.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/snapshot/format.h"
#include "vmm/virtio/rng/rng.h"
#include "vmm/virtio/transport/mmio.h"

namespace husk {
namespace {

std::string temp_path(const char* name) {
  return std::string("/tmp/husk-snapshot-unit-") + std::to_string(getpid()) + "-" + name;
}

TEST(SnapshotFormat, RoundTripsEveryFieldKind) {
  snapshot::Writer w;
  w.u8(7), w.u16(0xbeef), w.u32(0xdeadbeef), w.u64(1ull << 40), w.boolean(true), w.str("tag");
  struct Pod {
    uint32_t a;
    uint64_t b;
  } pod{1, 2};
  w.pod(pod);
  snapshot::Reader r(w.bytes());
  EXPECT_EQ(r.u8("a"), 7);
  EXPECT_EQ(r.u16("b"), 0xbeef);
  EXPECT_EQ(r.u32("c"), 0xdeadbeefu);
  EXPECT_EQ(r.u64("d"), 1ull << 40);
  EXPECT_TRUE(r.boolean("e"));
  EXPECT_EQ(r.str("f"), "tag");
  Pod back{};
  r.pod(&back, "g");
  EXPECT_EQ(back.b, 2u);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.at_end());
}

TEST(SnapshotFormat, EveryTruncationIsAnErrorNamingTheField) {
  snapshot::Writer w;
  w.u32(1), w.str("abcdef"), w.u64(2);
  for (size_t n = 0; n < w.bytes().size(); ++n) {
    snapshot::Reader r(std::span<const uint8_t>(w.bytes().data(), n));
    r.u32("count");
    r.str("name");
    r.u64("value");
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_NE(r.status().error().message.find("runs past the end"), std::string::npos) << r.status().error().message;
  }
}

TEST(SnapshotFormat, WrongSizesBadBooleansAndImpossibleCountsAreRefused) {
  snapshot::Writer w;
  w.pod(uint32_t{5});
  snapshot::Reader r(w.bytes());
  uint64_t wide = 0;
  r.pod(&wide, "register block");
  EXPECT_NE(r.status().error().message.find("register block has the wrong size"), std::string::npos);

  snapshot::Writer w2;
  w2.u8(2);
  snapshot::Reader r2(w2.bytes());
  r2.boolean("flag");
  EXPECT_FALSE(r2.ok());

  snapshot::Writer w3;
  w3.u32(1000000);  // a million items in a four-byte file
  snapshot::Reader r3(w3.bytes());
  EXPECT_EQ(r3.count("MSR count", 16), 0u);
  EXPECT_NE(r3.status().error().message.find("more items than the file holds"), std::string::npos);
}

TEST(SnapshotFormat, StateFileRoundTripsAndDetectsDamage) {
  std::string path = temp_path("state");
  std::vector<uint8_t> payload(5000);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(snapshot::write_state_file(path, payload).ok());
  auto back = snapshot::read_state_file(path);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, payload);
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // guest memory secrets live next to it

  auto poke = [&](off_t at, uint8_t byte) {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_EQ(::pwrite(fd, &byte, 1, at), 1);
    ::close(fd);
  };
  auto error_of = [&] {
    auto r = snapshot::read_state_file(path);
    return r.ok() ? std::string("accepted") : r.error().message;
  };
  poke(3000, 0x55 ^ payload[3000 - 24]);
  EXPECT_NE(error_of().find("checksum mismatch"), std::string::npos) << error_of();
  ASSERT_TRUE(snapshot::write_state_file(path, payload).ok());
  poke(8, 9);  // version
  EXPECT_NE(error_of().find("format version 9"), std::string::npos) << error_of();
  ASSERT_TRUE(snapshot::write_state_file(path, payload).ok());
  poke(0, 'X');
  EXPECT_NE(error_of().find("not a husk snapshot"), std::string::npos) << error_of();
  ASSERT_TRUE(snapshot::write_state_file(path, payload).ok());
  ASSERT_EQ(::truncate(path.c_str(), 4000), 0);
  EXPECT_NE(error_of().find("truncated"), std::string::npos) << error_of();
  ASSERT_EQ(::truncate(path.c_str(), 10), 0);
  EXPECT_NE(error_of().find("is not a husk snapshot state file"), std::string::npos) << error_of();
  ::unlink(path.c_str());
  EXPECT_NE(error_of().find("cannot open"), std::string::npos) << error_of();
}

struct MemoryFileTest : ::testing::Test {
  std::vector<RamRegion> regions{{GuestAddress(0), 1 << 20}, {GuestAddress(4 << 20), 1 << 20}};
  std::string path = temp_path("mem");
  void TearDown() override { ::unlink(path.c_str()); }
  UniqueFd saved() {
    auto mem = GuestMemory::create(regions).value();
    EXPECT_TRUE(mem.fill(GuestAddress(0x3000), 100, 0xaa).ok());
    EXPECT_TRUE(mem.fill(GuestAddress((4 << 20) + 0x8000), 4096, 0xbb).ok());
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    EXPECT_TRUE(mem.save(fd.get()).ok());
    return fd;
  }
  static uint8_t at(const GuestMemory& m, uint64_t a) { return m.read_obj<uint8_t>(GuestAddress(a)).value(); }
};

TEST_F(MemoryFileTest, SavedMemoryIsSparseAndRestoresIntoIndependentCopies) {
  UniqueFd fd = saved();
  struct stat st{};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, 2 << 20);
  EXPECT_LT(st.st_blocks * 512, 64 * 1024);  // two pages of data, the rest holes
  auto a = GuestMemory::restore(regions, fd.get());
  auto b = GuestMemory::restore(regions, fd.get());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(at(*a, 0x3000), 0xaa);
  EXPECT_EQ(at(*a, 0x3000 + 100), 0);
  EXPECT_EQ(at(*a, (4 << 20) + 0x8fff), 0xbb);
  // Copy-on-write: a guest's write stays in its own copy and never reaches the file.
  ASSERT_TRUE(a->fill(GuestAddress(0x3000), 1, 0x11).ok());
  EXPECT_EQ(at(*a, 0x3000), 0x11);
  EXPECT_EQ(at(*b, 0x3000), 0xaa);
  auto c = GuestMemory::restore(regions, fd.get());
  EXPECT_EQ(at(*c, 0x3000), 0xaa);
}

TEST_F(MemoryFileTest, AMemoryFileOfTheWrongSizeIsRefused) {
  UniqueFd fd = saved();
  ASSERT_EQ(::ftruncate(fd.get(), (2 << 20) - 4096), 0);
  auto m = GuestMemory::restore(regions, fd.get());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("the memory file holds"), std::string::npos) << m.error().message;
}

}  // namespace

namespace virtio {
namespace {

using testing::FakeQueue;

struct CountingIrq : Interrupt {
  int count = 0;
  void trigger() override { ++count; }
};

// A device of another kind with the same queue count, to restore into.
struct OtherDevice : Device {
  DeviceType type() const override { return kNet; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  uint64_t features() const override { return 0; }
  void read_config(uint64_t, std::span<uint8_t>) override {}
  Status activate(GuestMemory&, std::vector<Queue>&, uint64_t, Notifier&) override { return {}; }
  Status process_queue(uint16_t) override { return {}; }
  void reset() override {}
};

struct TransportSnapshotTest : ::testing::Test {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x100000}}).value();
  std::shared_ptr<CountingIrq> irq = std::make_shared<CountingIrq>();
  FakeQueue driver{mem, 16};

  static uint32_t rd(MmioTransport& t, uint64_t off) {
    uint32_t v;
    t.read(off, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  static void wr(MmioTransport& t, uint64_t off, uint32_t v) {
    t.write(off, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  void bring_up(MmioTransport& t) {
    wr(t, 0x70, 1), wr(t, 0x70, 3);
    wr(t, 0x24, 1), wr(t, 0x20, 1);  // VERSION_1
    wr(t, 0x70, 11);
    wr(t, 0x30, 0), wr(t, 0x38, 16);
    wr(t, 0x80, FakeQueue::kDesc), wr(t, 0x90, FakeQueue::kAvail), wr(t, 0xa0, FakeQueue::kUsed);
    wr(t, 0x44, 1);
    wr(t, 0x70, 15);
  }
};

TEST_F(TransportSnapshotTest, RestoredTransportIsActiveAndContinuesTheRings) {
  MmioTransport before(std::make_shared<Rng>(), mem, irq);
  bring_up(before);
  driver.add_chain({{0x10000, 32, true}});
  wr(before, 0x50, 0);
  ASSERT_EQ(driver.used_idx(), 1);
  snapshot::Writer w;
  ASSERT_TRUE(before.save(w).ok());

  // A new device and transport, as a restoring husk-vmm builds them; guest memory is the same.
  auto irq2 = std::make_shared<CountingIrq>();
  MmioTransport after(std::make_shared<Rng>(), mem, irq2);
  snapshot::Reader r(w.bytes());
  ASSERT_TRUE(after.restore(r).ok()) << r.status().error().message;
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(rd(after, 0x70), 15u);  // DRIVER_OK, no reset needed
  wr(after, 0x30, 0);
  EXPECT_EQ(rd(after, 0x44), 1u);   // queue ready
  driver.add_chain({{0x10100, 32, true}});
  wr(after, 0x50, 0);
  // The second request lands in the used ring's second slot: the ring position came along.
  EXPECT_EQ(driver.used_idx(), 2);
  EXPECT_EQ(driver.used(1).second, 32u);
  EXPECT_EQ(irq2->count, 1);
}

TEST_F(TransportSnapshotTest, RestoringIntoAnotherKindOfDeviceIsRefused) {
  MmioTransport before(std::make_shared<Rng>(), mem, irq);
  bring_up(before);
  snapshot::Writer w;
  ASSERT_TRUE(before.save(w).ok());
  MmioTransport other(std::make_shared<OtherDevice>(), mem, irq);
  snapshot::Reader r(w.bytes());
  auto s = other.restore(r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("snapshot device mismatch"), std::string::npos) << s.error().message;
}

TEST_F(TransportSnapshotTest, TruncatedTransportStateIsAnError) {
  MmioTransport before(std::make_shared<Rng>(), mem, irq);
  bring_up(before);
  snapshot::Writer w;
  ASSERT_TRUE(before.save(w).ok());
  for (size_t n = 0; n < w.bytes().size(); n += 3) {
    MmioTransport after(std::make_shared<Rng>(), mem, irq);
    snapshot::Reader r(std::span<const uint8_t>(w.bytes().data(), n));
    EXPECT_FALSE(after.restore(r).ok()) << n;
  }
}

TEST_F(TransportSnapshotTest, RingsOutsideGuestMemoryAreRefusedOnRestore) {
  MmioTransport before(std::make_shared<Rng>(), mem, irq);
  bring_up(before);
  snapshot::Writer w;
  ASSERT_TRUE(before.save(w).ok());
  // The same state, restored into a VM whose memory is too small for the rings.
  GuestMemory small = GuestMemory::create({{GuestAddress(0), 0x2000}}).value();
  MmioTransport after(std::make_shared<Rng>(), small, irq);
  snapshot::Reader r(w.bytes());
  EXPECT_FALSE(after.restore(r).ok());
}

}  // namespace
}  // namespace virtio
}  // namespace husk
