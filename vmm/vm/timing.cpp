#include "vmm/vm/timing.h"

#include <time.h>

#include <cstdlib>

namespace husk::timing {
namespace {
uint64_t g_start_ns = 0;
}

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

}  // namespace husk::timing
