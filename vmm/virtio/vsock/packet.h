// virtio-vsock packets (spec 5.10.6): the header and the checks every packet from the guest
// must pass before the device acts on it.
#pragma once

#include <cstdint>
#include <span>

#include "common/result.h"

namespace husk::virtio::vsock {

constexpr uint64_t kHostCid = 2;
constexpr uint16_t kTypeStream = 1;
enum Op : uint16_t {
  kOpRequest = 1, kOpResponse = 2, kOpRst = 3, kOpShutdown = 4, kOpRw = 5,
  kOpCreditUpdate = 6, kOpCreditRequest = 7,
};
constexpr uint32_t kShutdownRcv = 1, kShutdownSend = 2;
constexpr uint32_t kMaxPayload = 64 * 1024;

#pragma pack(push, 1)
struct Header {
  uint64_t src_cid, dst_cid;
  uint32_t src_port, dst_port;
  uint32_t len;
  uint16_t type, op;
  uint32_t flags, buf_alloc, fwd_cnt;
};
#pragma pack(pop)
static_assert(sizeof(Header) == 44);

// Validates a header the guest sent, given how many payload bytes its chain really carries:
// known op, stream type, payload within the chain and the size limit, only RW carries data,
// addressed from the guest's CID to the host.
Status check_tx_header(const Header& h, uint64_t guest_cid, uint64_t payload_available);

}  // namespace husk::virtio::vsock
