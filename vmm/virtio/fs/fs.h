// virtio-fs (spec 5.11) through a vhost-user backend (Debian's virtiofsd) that never sees guest
// memory. husk-vmm serves the guest's queues itself, as for any device, and forwards each
// request on a ring of its own in a bounce area the backend maps: the request's bytes are
// copied there, the reply copied back into the guest's buffers when the backend returns it.
// One copy each way buys private guest memory (snapshots restore it MAP_PRIVATE, so copies of
// a template share its pages), a backend confined to requests, and requests the guest cannot
// change under the backend. The guest mounts it with `mount -t virtiofs TAG /mnt`.
// Nothing is asked of the backend before the guest's first request (the vhost-user handshake
// waits for nothing at start: a sandbox's virtiofsd starts beside husk-vmm).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "vmm/virtio/device.h"
#include "vmm/virtio/fs/backend_ring.h"
#include "vmm/virtio/fs/bounce.h"
#include "vmm/virtio/fs/vhost_user.h"

namespace husk::virtio {

struct FsConfig {
  std::string tag;     // what the guest mounts (at most 36 bytes)
  std::string socket;  // virtiofsd's --socket-path, or "fd=N": a connected socket handed to us
};

class Fs : public Device {
 public:
  static Result<std::shared_ptr<Fs>> open(const FsConfig& cfg);
  Fs(VhostUserClient backend, std::string tag, BounceArea area);

  DeviceType type() const override { return kFs; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }  // hiprio, request
  uint64_t features() const override { return 0; }  // no notification queue, no DAX window
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Status activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t acked_features,
                  Notifier& notifier) override;
  Status process_queue(uint16_t index) override;
  void reset() override;
  // A snapshot is refused once the guest used the share (a FUSE session lives in the backend we
  // would lose): the restored VM attaches a new virtiofsd.
  Status check_snapshot(const GuestMemory& mem, const std::vector<Queue>& queues) const override;
  std::vector<int> host_fds() const override;
  Status on_host_data(int fd, std::span<const uint8_t> bytes) override;

 private:
  // A guest request handed to the backend: where its bytes are in the bounce area and where the
  // reply goes. An orphan's guest is gone (reset): its reply is dropped.
  struct InFlight {
    uint16_t head = 0;
    std::vector<Segment> writable;
    uint64_t offset = 0;
    uint32_t readable = 0, writable_bytes = 0;
    bool orphan = false;
  };
  struct Lane {  // one guest queue and the backend ring that serves it
    std::unique_ptr<BackendRing> ring;
    std::vector<std::optional<InFlight>> in_flight;  // by ring slot
    std::optional<DescriptorChain> held;             // waits for room in the bounce area
    UniqueFd kick, call;
  };
  Status setup_backend();
  Status forward(uint16_t index);
  Status complete(uint16_t index);

  VhostUserClient backend_;
  std::string tag_;
  BounceArea area_;
  std::vector<Lane> lanes_;
  bool backend_ready_ = false;
  GuestMemory* mem_ = nullptr;
  std::vector<Queue>* queues_ = nullptr;
  Notifier* notifier_ = nullptr;
};

}  // namespace husk::virtio
