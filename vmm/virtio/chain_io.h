// Byte-level access to the segments of a validated descriptor chain, so devices never deal
// with descriptor boundaries: a request header may be split across descriptors.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/virtio/queue.h"

namespace husk::virtio {

// Copies out.size() bytes starting `offset` bytes into `segs`.
Status copy_from_chain(const GuestMemory& mem, const std::vector<Segment>& segs, uint64_t offset,
                       std::span<uint8_t> out);
// Copies `in` into `segs` starting `offset` bytes in.
Status copy_to_chain(GuestMemory& mem, const std::vector<Segment>& segs, uint64_t offset,
                     std::span<const uint8_t> in);
// Host iovecs covering [offset, offset+len) of `segs`, for preadv/pwritev straight into guest
// memory.
Result<std::vector<iovec>> chain_iovecs(GuestMemory& mem, const std::vector<Segment>& segs,
                                        uint64_t offset, uint64_t len);

}  // namespace husk::virtio
