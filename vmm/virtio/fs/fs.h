// virtio-fs (spec 5.11) as a vhost-user front end: the queues are served by an external backend
// (Debian's virtiofsd) that maps guest memory itself. husk-vmm forwards the guest's kicks to the
// backend's kick eventfds and turns the backend's call eventfds into the transport's interrupt
// (virtio-mmio has an interrupt status register that must be set, so calls cannot go to KVM
// directly). The guest mounts it with `mount -t virtiofs TAG /mnt`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "vmm/virtio/device.h"
#include "vmm/virtio/fs/vhost_user.h"

namespace husk::virtio {

struct FsConfig {
  std::string tag;     // what the guest mounts (at most 36 bytes)
  std::string socket;  // virtiofsd's --socket-path, or "fd=N": a connected socket handed to us
};

class Fs : public Device {
 public:
  static Result<std::shared_ptr<Fs>> open(const FsConfig& cfg);
  Fs(VhostUserClient backend, std::string tag, uint64_t backend_features);

  DeviceType type() const override { return kFs; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }  // hiprio, request
  uint64_t features() const override;
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Status activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t acked_features,
                  Notifier& notifier) override;
  Status process_queue(uint16_t index) override;
  void reset() override;
  // A snapshot is refused once the guest used the share (a FUSE session lives in the backend we
  // would lose): the restored VM attaches a new virtiofsd whose rings start where these did.
  Status check_snapshot(const GuestMemory& mem, const std::vector<Queue>& queues) const override;
  std::vector<int> host_fds() const override;
  Status on_host_data(int fd, std::span<const uint8_t> bytes) override;

 private:
  VhostUserClient backend_;
  std::string tag_;
  uint64_t backend_features_;
  std::vector<UniqueFd> kick_, call_;
  Notifier* notifier_ = nullptr;
  bool active_ = false;
};

}  // namespace husk::virtio
