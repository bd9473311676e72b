#include "vmm/virtio/rate_limiter.h"

#include <time.h>

#include <algorithm>

namespace husk::virtio {
namespace {
constexpr uint64_t kSecond = 1000000000ull;

// a * b / c without overflowing for the magnitudes used here (c <= a few seconds in ns).
uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(a) * b / c);
}
}  // namespace

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kSecond + static_cast<uint64_t>(ts.tv_nsec);
}

TokenBucket::TokenBucket(uint64_t size, uint64_t refill_ns, uint64_t one_time_burst)
    : size_(std::max<uint64_t>(size, 1)), refill_ns_(std::max<uint64_t>(refill_ns, 1)),
      burst_(one_time_burst), budget_(size_) {}

void TokenBucket::refill(uint64_t now_ns) {
  if (!started_) {
    started_ = true;
    last_ns_ = now_ns;
    return;
  }
  if (now_ns <= last_ns_) return;
  uint64_t elapsed = now_ns - last_ns_;
  uint64_t add = mul_div(elapsed, size_, refill_ns_);
  if (add == 0) return;  // keep the remainder accumulating in elapsed time
  budget_ = std::min(size_, budget_ + add);
  // Advance by the time those tokens represent, not by `elapsed`, so no fraction is lost.
  last_ns_ += mul_div(add, refill_ns_, size_);
  if (budget_ == size_) last_ns_ = now_ns;
}

bool TokenBucket::reduce(uint64_t tokens, uint64_t now_ns) {
  refill(now_ns);
  uint64_t from_burst = std::min(tokens, burst_);
  uint64_t rest = std::min(tokens - from_burst, size_);
  if (rest > budget_) return false;
  burst_ -= from_burst;
  budget_ -= rest;
  return true;
}

uint64_t TokenBucket::ns_until(uint64_t tokens, uint64_t now_ns) {
  refill(now_ns);
  uint64_t need = std::min(tokens - std::min(tokens, burst_), size_);
  if (need <= budget_) return 0;
  return mul_div(need - budget_, refill_ns_, size_) + 1;
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
