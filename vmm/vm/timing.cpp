#include "vmm/vm/timing.h"

#include <time.h>

#include <atomic>
#include <cstdlib>

namespace husk::timing {
namespace {
uint64_t g_start_ns = 0;
std::atomic<uint64_t> g_first_run_ns{0};
std::atomic<uint64_t> g_memslot_ns{0};
}  // namespace

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void init() {
  g_start_ns = now_ns();
  if (const char* t0 = std::getenv("HUSK_EXEC_T0_NS")) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(t0, &end, 10);
    if (end && *end == '\0' && v > 0 && v <= g_start_ns) g_start_ns = v;
  }
}

uint64_t since_start_us(uint64_t t_ns) { return t_ns > g_start_ns ? (t_ns - g_start_ns) / 1000 : 0; }

void note_first_run() {
  uint64_t zero = 0;
  g_first_run_ns.compare_exchange_strong(zero, now_ns(), std::memory_order_relaxed);
}
uint64_t first_run_ns() { return g_first_run_ns.load(std::memory_order_relaxed); }
void note_memslot_ns(uint64_t ns) { g_memslot_ns.store(ns, std::memory_order_relaxed); }
uint64_t memslot_ns() { return g_memslot_ns.load(std::memory_order_relaxed); }

}  // namespace husk::timing
