// virtio-rng (entropy device, spec 5.4): fills every device-writable buffer from getrandom(2).
#pragma once

#include "vmm/virtio/device.h"

namespace husk::virtio {

class Rng : public Device {
 public:
  DeviceType type() const override { return kRng; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  uint64_t features() const override { return 0; }
  void read_config(uint64_t, std::span<uint8_t>) override {}
  Status activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t,
                  Notifier& notifier) override;
  Status process_queue(uint16_t index) override;
  void reset() override;

 private:
  GuestMemory* mem_ = nullptr;
  Queue* queue_ = nullptr;
  Notifier* notifier_ = nullptr;
};

}  // namespace husk::virtio
