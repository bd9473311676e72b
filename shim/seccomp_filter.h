// The shim's own seccomp filter, installed before it starts a thread: a denylist (the shim's
// needs — gRPC, ttrpc, mounts, cgroups, spawning helpers — are too wide for a short allowlist)
// of what no husk process needs. Filters survive exec, so every helper the shim starts
// (husk-jailer, husk-vmm on top of its own allowlists, virtiofsd, a host-mode agent) carries it.
#pragma once

#include "common/result.h"

namespace husk::shim {

Status install_shim_filter();

}  // namespace husk::shim
