#include "common/log.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <sys/socket.h>

namespace husk::log {
namespace {
const char* g_program = "husk";
std::atomic<Level> g_level{Level::kInfo};
std::atomic<int> g_sink{-1};
const char* kNames[] = {"error", "warning", "info", "debug"};
}  // namespace

void set_program(const char* name) { g_program = name; }
void set_level(Level l) { g_level.store(l); }
void add_sink(int fd) { g_sink.store(fd); }
Level level() { return g_level.load(std::memory_order_relaxed); }

void write(Level lvl, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  // One fprintf per line keeps lines from different threads whole.
  std::fprintf(stderr, "%s: %s: %s\n", g_program, kNames[static_cast<int>(lvl)], buf);
  if (int fd = g_sink.load(std::memory_order_relaxed); fd >= 0) {
    char line[1200];
    int n = std::snprintf(line, sizeof line, "%s: %s: %s\n", g_program, kNames[static_cast<int>(lvl)], buf);
    if (n > 0) (void)!::send(fd, line, std::min<size_t>(static_cast<size_t>(n), sizeof line - 1), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
}

}  // namespace husk::log
