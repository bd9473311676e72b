// virtio-blk requests (spec 5.2.6) against a temporary image file.
#include "vmm/virtio/blk/block.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "tests/unit/virtio_fake_driver.h"

namespace husk::virtio {
namespace {

using testing::FakeQueue;

using NullNotifier = testing::CountingNotifier;

struct Header {
  uint32_t type, reserved;
  uint64_t sector;
};

struct BlkTest : ::testing::Test {
  std::string path;
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x100000}}).value();
  FakeQueue driver{mem, 16};
  std::vector<Queue> queues{Queue(256)};
  NullNotifier notifier;
  std::shared_ptr<Block> blk;

  void open(bool ro, RateLimit limit = {}) {
    char p[] = "/tmp/husk-blk-XXXXXX";
    int fd = mkstemp(p);
    ASSERT_GE(fd, 0);
    std::vector<uint8_t> data(64 * 512);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i / 512 + 1);
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    close(fd);
    path = p;
    auto b = Block::open(BlockConfig{path, ro, limit});
    ASSERT_TRUE(b.ok()) << b.error().message;
    blk = *b;
    driver.configure(queues[0]);
    ASSERT_TRUE(blk->activate(mem, queues, 0, notifier).ok());
  }
  void TearDown() override { unlink(path.c_str()); }

  // Posts header (at 0x10000), optional data (0x20000), status byte (0x30000) and runs it.
  uint8_t request(uint32_t type, uint64_t sector, uint32_t data_len, bool data_in) {
    (void)mem.write_obj(GuestAddress(0x10000), Header{type, 0, sector});
    (void)mem.write_obj(GuestAddress(0x30000), uint8_t{0xff});
    std::vector<testing::Buf> bufs{{0x10000, sizeof(Header)}};
    if (data_len) bufs.push_back({0x20000, data_len, data_in});
    bufs.push_back({0x30000, 1, true});
    driver.add_chain(bufs);
    EXPECT_TRUE(blk->process_queue(0).ok());
    return mem.read_obj<uint8_t>(GuestAddress(0x30000)).value();
  }
};

TEST_F(BlkTest, S5_2_4_CapacityInConfigSpace) {
  open(false);
  uint64_t cap = 0;
  blk->read_config(0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&cap), 8));
  EXPECT_EQ(cap, 64u);
  uint32_t seg_max = 0;
  blk->read_config(12, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&seg_max), 4));
  EXPECT_EQ(seg_max, 254u);
  EXPECT_TRUE(blk->features() & (1u << 2));
  EXPECT_FALSE(blk->features() & (1u << 5));
  uint8_t beyond = 0xaa;
  blk->read_config(4096, std::span<uint8_t>(&beyond, 1));
  EXPECT_EQ(beyond, 0);
}

TEST_F(BlkTest, ReadWriteFlushRoundTrip) {
  open(false);
  EXPECT_EQ(request(0, 3, 1024, true), 0);  // read sectors 3-4
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(0x20000)).value(), 4);
  EXPECT_EQ(mem.read_obj<uint8_t>(GuestAddress(0x20000 + 512)).value(), 5);
  EXPECT_EQ(driver.used(0).second, 1025u);  // data + status
  (void)mem.fill(GuestAddress(0x20000), 512, 0x5a);
  EXPECT_EQ(request(1, 10, 512, false), 0);  // write sector 10
  EXPECT_EQ(request(4, 0, 0, false), 0);     // flush
  int fd = ::open(path.c_str(), O_RDONLY);
  uint8_t b = 0;
  ASSERT_EQ(pread(fd, &b, 1, 10 * 512 + 7), 1);
  close(fd);
  EXPECT_EQ(b, 0x5a);
  EXPECT_GE(notifier.used, 1);
}

TEST_F(BlkTest, OutOfRangeUnalignedAndUnknownRequests) {
  open(false);
  EXPECT_EQ(request(0, 63, 1024, true), 1);        // runs past the end
  EXPECT_EQ(request(0, ~0ull - 1, 1024, true), 1);  // sector arithmetic overflows
  EXPECT_EQ(request(0, 0, 100, true), 1);           // not a whole sector
  EXPECT_EQ(request(99, 0, 0, false), 2);           // unsupported
}

TEST_F(BlkTest, GetId) {
  open(false);
  EXPECT_EQ(request(8, 0, 20, true), 0);
  char id[21] = {};
  ASSERT_TRUE(mem.read(GuestAddress(0x20000), std::span<uint8_t>(reinterpret_cast<uint8_t*>(id), 20)).ok());
  EXPECT_EQ(std::string(id), path.substr(path.find_last_of('/') + 1));
}

TEST_F(BlkTest, ReadOnlyRefusesWrites) {
  open(true);
  EXPECT_TRUE(blk->features() & (1u << 5));
  EXPECT_EQ(request(1, 0, 512, false), 1);
  EXPECT_EQ(request(0, 0, 512, true), 0);
}

TEST_F(BlkTest, RequestWithoutStatusByteIsReturnedEmpty) {
  open(false);
  (void)mem.write_obj(GuestAddress(0x10000), Header{0, 0, 0});
  driver.add_chain({{0x10000, sizeof(Header)}});
  EXPECT_TRUE(blk->process_queue(0).ok());
  EXPECT_EQ(driver.used_idx(), 1);
  EXPECT_EQ(driver.used(0).second, 0u);
}

TEST_F(BlkTest, RateLimitedRequestsWaitAndAreServedInOrderLater) {
  open(false, RateLimit{0, 3});  // 3 requests per second, a bucket of 3
  int served = 0;
  for (int i = 0; i < 5; ++i) {  // 15 descriptors: fits the 16-entry test queue
    (void)mem.write_obj(GuestAddress(0x10000), Header{0, 0, 0});
    driver.add_chain({{0x10000, sizeof(Header)}, {0x20000, 512, true}, {0x30000 + static_cast<uint64_t>(i), 1, true}});
  }
  ASSERT_TRUE(blk->process_queue(0).ok());
  served = driver.used_idx();
  EXPECT_EQ(served, 3);  // the bucket's worth, then the device waits
  EXPECT_GT(notifier.retry_ns, 0u);
  EXPECT_LE(notifier.retry_ns, 340000000u);  // one token comes back every 333 ms
  usleep(static_cast<useconds_t>(notifier.retry_ns / 1000 * 2 + 10000));  // two more tokens
  ASSERT_TRUE(blk->process_queue(0).ok());
  EXPECT_EQ(driver.used_idx(), 5);
  for (uint16_t i = 0; i < 5; ++i) EXPECT_EQ(driver.used(i).first, i * 3u) << i;  // in order
}

TEST(BlkOpen, MissingOrNonRegularImage) {
  EXPECT_FALSE(Block::open(BlockConfig{"/nonexistent.img", false, {}}).ok());
  EXPECT_FALSE(Block::open(BlockConfig{"/dev", true, {}}).ok());
}

}  // namespace
}  // namespace husk::virtio
