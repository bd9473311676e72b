// virtio-rng against a hostile driver: a chain that claims more than the device gives per
// request is filled only up to the bound, and the rate limiter holds requests back.
#include "vmm/virtio/rng/rng.h"

#include <gtest/gtest.h>

#include "tests/unit/virtio_fake_driver.h"

namespace husk::virtio {
namespace {

using testing::FakeQueue;

struct Notifications : Notifier {
  int used = 0;
  uint64_t retry_ns = 0;
  void used_buffers() override { ++used; }
  void config_changed() override {}
  void retry_after(uint16_t, uint64_t ns) override { retry_ns = ns; }
};

struct RngTest : ::testing::Test {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x400000}}).value();
  FakeQueue driver{mem, 16};
  std::vector<Queue> queues{Queue(256)};
  Notifications notifier;
  std::shared_ptr<Rng> rng;
  void start(RateLimit limit = {}) {
    rng = std::make_shared<Rng>(limit);
    driver.configure(queues[0]);
    ASSERT_TRUE(rng->activate(mem, queues, 0, notifier).ok());
  }
};

TEST_F(RngTest, FillsSmallBuffersWhole) {
  start();
  driver.add_chain({{0x100000, 512, true}});
  ASSERT_TRUE(rng->process_queue(0).ok());
  EXPECT_EQ(driver.used_idx(), 1);
  EXPECT_EQ(driver.used(0).second, 512u);
}

TEST_F(RngTest, OneChainGetsAtMostTheBoundWhateverItClaims) {
  start();
  // Many segments of 1 MiB each (within guest memory, all aliasing): the chain claims 12 MiB.
  std::vector<testing::Buf> bufs;
  for (int i = 0; i < 12; i++) bufs.push_back({0x200000, 0x100000, true});
  driver.add_chain(bufs);
  ASSERT_TRUE(rng->process_queue(0).ok());
  EXPECT_EQ(driver.used_idx(), 1);
  EXPECT_EQ(driver.used(0).second, Rng::kMaxPerRequest);
}

TEST_F(RngTest, RateLimiterHoldsRequestsBack) {
  start(RateLimit{0, 2});  // two requests per second
  for (int i = 0; i < 4; i++) driver.add_chain({{0x100000 + i * 0x1000ull, 64, true}});
  ASSERT_TRUE(rng->process_queue(0).ok());
  EXPECT_EQ(driver.used_idx(), 2);
  EXPECT_GT(notifier.retry_ns, 0u);
}

}  // namespace
}  // namespace husk::virtio
