// Network namespaces: the shim works inside a pod's network namespace on a thread of its own
// (setns changes only the calling thread, and that thread ends with the work).
#pragma once

#include <functional>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk::netlink {

// Opens `path` (e.g. /var/run/netns/cni-1234) and checks that it is a network namespace.
Result<UniqueFd> open_netns(const std::string& path);

// Runs `fn` on a new thread that joined the network namespace `netns_fd`, and waits for it.
Status in_netns(int netns_fd, const std::function<Status()>& fn);

}  // namespace husk::netlink
