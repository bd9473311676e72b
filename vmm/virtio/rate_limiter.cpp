#include "vmm/virtio/rate_limiter.h"

#include <time.h>

#include <algorithm>

namespace husk::virtio {
namespace {
constexpr uint64_t kSecond = 1000000000ull;

// a * b / c in 128 bits, saturated to uint64: a wait longer than 584 years is "forever".
uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c) {
  unsigned __int128 r = static_cast<unsigned __int128>(a) * b / c;
  return r > ~uint64_t{0} ? ~uint64_t{0} : static_cast<uint64_t>(r);
}
}  // namespace

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kSecond + static_cast<uint64_t>(ts.tv_nsec);
}

// Bucket sizes are capped so that budgets and debts fit in int64 with room to spare.
constexpr uint64_t kMaxTokens = 1ull << 62;

TokenBucket::TokenBucket(uint64_t size, uint64_t refill_ns, uint64_t one_time_burst)
    : size_(std::clamp<uint64_t>(size, 1, kMaxTokens)), refill_ns_(std::max<uint64_t>(refill_ns, 1)),
      burst_(std::min(one_time_burst, kMaxTokens)), budget_(static_cast<int64_t>(size_)) {}

void TokenBucket::refill(uint64_t now_ns) {
  if (!started_) {
    started_ = true;
    last_ns_ = now_ns;
    return;
  }
  if (now_ns <= last_ns_) return;
  uint64_t elapsed = now_ns - last_ns_;
  const int64_t size = static_cast<int64_t>(size_);
  // Never more than it takes to fill the bucket from its deepest possible debt.
  uint64_t add = std::min(mul_div(std::min<uint64_t>(elapsed, uint64_t{1} << 62), size_, refill_ns_), 2 * kMaxTokens);
  if (add == 0) return;  // keep the remainder accumulating in elapsed time
  budget_ = static_cast<int64_t>(std::min<__int128>(size, static_cast<__int128>(budget_) + add));
  // Advance by the time those tokens represent, not by `elapsed`, so no fraction is lost.
  last_ns_ += mul_div(add, refill_ns_, size_);
  if (budget_ == size || last_ns_ > now_ns) last_ns_ = now_ns;
}

bool TokenBucket::reduce(uint64_t tokens, uint64_t now_ns) {
  if (ns_until(tokens, now_ns) > 0) return false;  // refills
  uint64_t from_burst = std::min(tokens, burst_);
  uint64_t rest = std::min(tokens - from_burst, 2 * kMaxTokens);
  burst_ -= from_burst;
  // A request larger than the bucket empties it and leaves the rest as debt (at most what a
  // full bucket plus kMaxTokens can absorb: int64 never overflows).
  budget_ = static_cast<int64_t>(std::max<__int128>(static_cast<__int128>(budget_) - rest, -static_cast<__int128>(kMaxTokens)));
  return true;
}

uint64_t TokenBucket::ns_until(uint64_t tokens, uint64_t now_ns) {
  refill(now_ns);
  // What must be in the bucket first: the request itself, or a full bucket when it is larger.
  uint64_t need = std::min(tokens - std::min(tokens, burst_), size_);
  if (static_cast<__int128>(need) <= budget_) return 0;
  uint64_t w = mul_div(static_cast<uint64_t>(static_cast<__int128>(need) - budget_), refill_ns_, size_);
  return w == ~uint64_t{0} ? w : w + 1;
}

RateLimiter::RateLimiter(RateLimit limit) {
  if (limit.bytes_per_sec) bytes_.emplace(limit.bytes_per_sec, kSecond);
  if (limit.ops_per_sec) ops_.emplace(limit.ops_per_sec, kSecond);
}

bool RateLimiter::consume(uint64_t bytes, uint64_t now_ns) {
  // Check both before taking from either, so a refusal leaves both untouched.
  if (ns_until(bytes, now_ns) > 0) return false;
  if (bytes_) bytes_->reduce(bytes, now_ns);
  if (ops_) ops_->reduce(1, now_ns);
  return true;
}

uint64_t RateLimiter::ns_until(uint64_t bytes, uint64_t now_ns) {
  uint64_t w = 0;
  if (bytes_) w = std::max(w, bytes_->ns_until(bytes, now_ns));
  if (ops_) w = std::max(w, ops_->ns_until(1, now_ns));
  return w;
}

}  // namespace husk::virtio
