// Code that runs in the forked children of the launcher, between fork and execve. Each step
// either succeeds or ends the child through die(), which sends the reason to the agent.
#pragma once

#include "guest-agent/runtime/launcher.h"

namespace husk::agent::child {

enum MsgType : uint32_t { kGo = 1, kUserMap, kAck, kPid, kReady, kStart, kError };

struct Msg {
  uint32_t type = 0;
  int32_t value = 0;
  char text[1016] = {};
};

// Set right after fork; die() reports through it.
void set_sync(int fd);
[[noreturn, gnu::format(printf, 1, 2)]] void die(const char* fmt, ...);
bool send_msg(int fd, uint32_t type, int32_t value, const char* text = "");

// Intermediate child: namespaces, then forks the process; never returns.
[[noreturn]] void intermediate(const LaunchPlan& plan, int sync);

// In rootfs.cpp: mounts, devices and pivot_root for a container init (new mount namespace),
// then masked/readonly paths and the read-only root.
// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) of `path` below `root`: the container's
// symlinks resolve inside its root, never to the agent's files. Also used by the agent itself.
int openat2_in_root(int root, const std::string& path, int flags);
void prepare_rootfs(const LaunchPlan& plan);
void finish_rootfs(const LaunchPlan& plan);

}  // namespace husk::agent::child
