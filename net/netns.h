// Network namespaces and taps: the shim works inside a pod's network namespace on a thread of its
// own (setns changes only the calling thread, and that thread ends with the work), and makes the
// tap husk-vmm is handed as an fd.
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

// Creates (or attaches to) tap `name` in the calling thread's network namespace with the flags
// husk-vmm needs: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR (12-byte headers). The interface lives while the fd does.
Result<UniqueFd> open_tap(const std::string& name);

}  // namespace husk::netlink
