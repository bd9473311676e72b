// The front-end side of the vhost-user protocol (QEMU docs/interop/vhost-user.rst), as much of
// it as a virtio-fs backend (virtiofsd) needs: the backend maps the memory we hand it (the
// bounce area, never guest RAM) and serves the rings in it; we hand it the rings, a kick and a
// call eventfd per queue.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk::virtio {

constexpr uint64_t kVhostUserFProtocolFeatures = 1ull << 30;

// One region of the backend's memory table: `addr` is what descriptors call it, `user_addr`
// where we have it mapped (ring addresses are given in our address space).
struct VhostUserRegion {
  uint64_t addr, size, user_addr;
  int fd;
};

class VhostUserClient {
 public:
  // `socket_path`, or "fd=N": an inherited socket already connected to the backend.
  static Result<VhostUserClient> connect(const std::string& socket_path);

  Result<uint64_t> get_features();
  Status set_features(uint64_t features);
  Status set_owner();
  Result<uint64_t> get_protocol_features();
  Status set_protocol_features(uint64_t features);
  Status set_mem_table(std::span<const VhostUserRegion> regions);
  Status set_vring_num(uint32_t index, uint32_t num);
  Status set_vring_base(uint32_t index, uint32_t base);
  Status set_vring_addr(uint32_t index, uint64_t desc, uint64_t used, uint64_t avail);
  Status set_vring_kick(uint32_t index, int fd);
  Status set_vring_call(uint32_t index, int fd);
  Status set_vring_enable(uint32_t index, bool enable);

 private:
  Status send(uint32_t request, std::span<const uint8_t> payload, std::span<const int> fds = {});
  Result<std::vector<uint8_t>> receive(uint32_t request);
  template <class T>
  Status send_obj(uint32_t request, const T& v, std::span<const int> fds = {}) {
    return send(request, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), sizeof v), fds);
  }
  Result<uint64_t> get_u64(uint32_t request);

  UniqueFd fd_;
};

}  // namespace husk::virtio
