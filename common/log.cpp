#include "common/log.h"

#include <cstdarg>
#include <cstdio>

namespace husk::log {
namespace {
const char* g_program = "husk";
std::atomic<Level> g_level{Level::kInfo};
const char* kNames[] = {"error", "warning", "info", "debug"};
}  // namespace

void set_program(const char* name) { g_program = name; }
void set_level(Level l) { g_level.store(l); }
Level level() { return g_level.load(std::memory_order_relaxed); }

void write(Level lvl, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  // One fprintf per line keeps lines from different threads whole.
  std::fprintf(stderr, "%s: %s: %s\n", g_program, kNames[static_cast<int>(lvl)], buf);
}

}  // namespace husk::log
