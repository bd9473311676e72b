#include "vmm/virtio/rate_limiter.h"

#include <gtest/gtest.h>

namespace husk::virtio {
namespace {

constexpr uint64_t kMs = 1000000;

TEST(TokenBucket, SpendsAndRefillsAtItsRate) {
  TokenBucket b(1000, 1000 * kMs);  // 1000 tokens per second
  EXPECT_TRUE(b.reduce(600, 0));
  EXPECT_FALSE(b.reduce(600, 0));
  EXPECT_EQ(b.ns_until(600, 0), 200 * kMs + 1);
  EXPECT_FALSE(b.reduce(600, 199 * kMs));
  EXPECT_TRUE(b.reduce(600, 200 * kMs + 1));
  // Never above its size, however long it idles.
  EXPECT_FALSE(b.reduce(1001, 10000 * kMs) && false);
  EXPECT_TRUE(b.reduce(400, 20000 * kMs));
  EXPECT_TRUE(b.reduce(600, 20000 * kMs));
  EXPECT_FALSE(b.reduce(1, 20000 * kMs));
}

TEST(TokenBucket, OversizedRequestTakesAFullBucket) {
  TokenBucket b(100, 1000 * kMs);
  EXPECT_TRUE(b.reduce(5000, 0));  // allowed once the bucket is full
  EXPECT_FALSE(b.reduce(1, 0));
}

TEST(TokenBucket, OversizedRequestCostsItsFullSize) {
  // 100 tokens/s, a request of 5000: it goes ahead on a full bucket, then the next one waits
  // until the other 4900 are paid back (49 s), not one second.
  TokenBucket b(100, 1000 * kMs);
  EXPECT_TRUE(b.reduce(5000, 0));
  EXPECT_FALSE(b.reduce(1, 1000 * kMs));
  EXPECT_FALSE(b.reduce(1, 48000 * kMs));
  EXPECT_GT(b.ns_until(1, 48000 * kMs), 900 * kMs);
  EXPECT_TRUE(b.reduce(1, 49100 * kMs));
  // A request the size of a whole address space is bounded debt, not a wrap.
  TokenBucket huge(100, 1000 * kMs);
  EXPECT_TRUE(huge.reduce(~0ull, 0));
  EXPECT_FALSE(huge.reduce(1, 1000000 * kMs));
  EXPECT_GT(huge.ns_until(1, 0), 1000000 * kMs);
}

TEST(RateLimiter, AGibibyteRequestCostsAGibibyte) {
  RateLimiter l(RateLimit{1 << 20, 0});  // 1 MiB/s
  EXPECT_TRUE(l.consume(1ull << 30, 0));
  EXPECT_FALSE(l.consume(4096, 1000 * kMs));
  uint64_t wait = l.ns_until(4096, 0);
  EXPECT_GT(wait, 1000ull * 1000 * kMs);  // about 1024 s
  EXPECT_LT(wait, 1030ull * 1000 * kMs);
}

TEST(TokenBucket, OneTimeBurstIsSpentFirstAndNotRefilled) {
  TokenBucket b(10, 1000 * kMs, 50);
  EXPECT_TRUE(b.reduce(60, 0));
  EXPECT_FALSE(b.reduce(1, 0));
  EXPECT_TRUE(b.reduce(10, 1000 * kMs));
  EXPECT_FALSE(b.reduce(1, 1000 * kMs));  // the burst is gone, only the refill remains
}

TEST(RateLimiter, BothBucketsMustAgree) {
  RateLimiter l(RateLimit{4096, 2});
  EXPECT_TRUE(l.consume(1000, 0));
  EXPECT_TRUE(l.consume(1000, 0));
  EXPECT_FALSE(l.consume(1, 0));  // ops exhausted, bytes not
  EXPECT_GT(l.ns_until(1, 0), 0u);
  RateLimiter bytes(RateLimit{4096, 0});
  EXPECT_TRUE(bytes.consume(4096, 0));
  EXPECT_FALSE(bytes.consume(1, 0));
  EXPECT_TRUE(RateLimiter(RateLimit{}).unlimited());
}

}  // namespace
}  // namespace husk::virtio
