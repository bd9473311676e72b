// Firecracker-style rate limiting for a device: a token bucket on bytes and one on operations.
// A request goes ahead only when both buckets hold enough tokens; otherwise the device waits
// (ns_until tells how long) and retries the same request.
#pragma once

#include <cstdint>
#include <optional>

namespace husk::virtio {

class TokenBucket {
 public:
  // `size` tokens, refilled at `size` per `refill_ns`, plus `one_time_burst` extra tokens that
  // are spent first and never come back.
  TokenBucket(uint64_t size, uint64_t refill_ns, uint64_t one_time_burst = 0);
  // Takes `tokens` if available. A request larger than the whole bucket goes ahead once the
  // bucket is full and leaves it in debt by the rest, so it costs its full size: a 1 GiB
  // request on a 1 MiB/s bucket holds the next request back for about 1024 s.
  bool reduce(uint64_t tokens, uint64_t now_ns);
  // Nanoseconds until `tokens` could be taken (0 if now).
  uint64_t ns_until(uint64_t tokens, uint64_t now_ns);

 private:
  void refill(uint64_t now_ns);
  uint64_t size_, refill_ns_, burst_;
  int64_t budget_;  // below zero: debt from a request larger than the bucket
  uint64_t last_ns_ = 0;
  bool started_ = false;
};

struct RateLimit {
  uint64_t bytes_per_sec = 0;  // 0: unlimited
  uint64_t ops_per_sec = 0;    // 0: unlimited
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimit limit);
  bool unlimited() const { return !bytes_ && !ops_; }
  // Consumes one operation of `bytes` bytes from both buckets, or nothing.
  bool consume(uint64_t bytes, uint64_t now_ns);
  uint64_t ns_until(uint64_t bytes, uint64_t now_ns);

 private:
  std::optional<TokenBucket> bytes_, ops_;
};

uint64_t monotonic_ns();

}  // namespace husk::virtio
