#include "vmm/virtio/vsock/packet.h"

namespace husk::virtio::vsock {

Status check_tx_header(const Header& h, uint64_t guest_cid, uint64_t payload_available) {
  if (h.op < kOpRequest || h.op > kOpCreditRequest) return make_error("vsock: unknown op %u", h.op);
  if (h.type != kTypeStream) return make_error("vsock: socket type %u is not stream", h.type);
  if (h.src_cid != guest_cid)
    return make_error("vsock: source CID %llu is not the guest's", (unsigned long long)h.src_cid);
  if (h.dst_cid != kHostCid)
    return make_error("vsock: destination CID %llu is not the host", (unsigned long long)h.dst_cid);
  if (h.len > kMaxPayload || h.len > payload_available)
    return make_error("vsock: payload of %u bytes exceeds its buffer or the limit", h.len);
  if (h.op != kOpRw && h.len != 0) return make_error("vsock: op %u carries a payload", h.op);
  return {};
}

}  // namespace husk::virtio::vsock
