// Taps for virtio-net: husk-vmm opens one by name, the shim makes one inside a pod's network
// namespace and hands husk-vmm its fd. Both need the same flags, so the frames carry the 12-byte
// virtio_net_hdr_v1 that virtio 1.0 guests use.
#pragma once

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk {

inline constexpr int kVnetHdrSize = 12;  // virtio_net_hdr_v1 (VERSION_1 always has num_buffers)

// Creates (or attaches to) tap `name` in the calling thread's network namespace:
// IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, 12-byte vnet headers; O_NONBLOCK when `nonblock`.
// The interface lives while the fd does (unless made persistent elsewhere).
Result<UniqueFd> open_tap(const std::string& name, bool nonblock);

}  // namespace husk
