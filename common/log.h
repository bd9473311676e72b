// Minimal leveled logging to stderr, prefixed with the program name. Paths a guest can trigger
// repeatedly use log_ratelimited so a hostile guest cannot flood the host's logs.
#pragma once

#include <atomic>
#include <cstdint>

namespace husk::log {

enum class Level { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void set_program(const char* name);
void set_level(Level level);
// Also send every line to `fd` (a socket; lines that would block are dropped, never waited on).
void add_sink(int fd);
Level level();
[[gnu::format(printf, 2, 3)]] void write(Level level, const char* fmt, ...);

// Allows `burst` messages, then one per `every` calls; returns whether to log this one.
class RateLimit {
 public:
  explicit RateLimit(uint64_t burst = 10, uint64_t every = 1000) : burst_(burst), every_(every) {}
  bool allow() {
    uint64_t n = count_.fetch_add(1, std::memory_order_relaxed);
    return n < burst_ || (n - burst_) % every_ == 0;
  }

 private:
  std::atomic<uint64_t> count_{0};
  uint64_t burst_, every_;
};

}  // namespace husk::log

#define HUSK_LOG(lvl, ...)                                                      \
  do {                                                                          \
    if (static_cast<int>(lvl) <= static_cast<int>(::husk::log::level()))        \
      ::husk::log::write(lvl, __VA_ARGS__);                                     \
  } while (0)
#define LOG_ERROR(...) HUSK_LOG(::husk::log::Level::kError, __VA_ARGS__)
#define LOG_WARN(...) HUSK_LOG(::husk::log::Level::kWarn, __VA_ARGS__)
#define LOG_INFO(...) HUSK_LOG(::husk::log::Level::kInfo, __VA_ARGS__)
#define LOG_DEBUG(...) HUSK_LOG(::husk::log::Level::kDebug, __VA_ARGS__)
// One static limiter per call site.
#define LOG_WARN_RATELIMITED(...)                         \
  do {                                                    \
    static ::husk::log::RateLimit husk_rl_;               \
    if (husk_rl_.allow()) LOG_WARN(__VA_ARGS__);          \
  } while (0)
