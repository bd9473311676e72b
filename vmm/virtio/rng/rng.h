// virtio-rng (entropy device, spec 5.4): fills device-writable buffers from getrandom(2), at most
// kMaxPerRequest bytes per request (the spec lets the device fill less than offered) so one
// chain the guest describes as gigabytes cannot hold the event loop, and optionally behind a
// rate limiter (bytes and requests per second), as Firecracker's entropy device.
#pragma once

#include "vmm/virtio/device.h"

namespace husk::virtio {

class Rng : public Device {
 public:
  static constexpr uint32_t kMaxPerRequest = 64 * 1024;

  explicit Rng(RateLimit limit = {});
  DeviceType type() const override { return kRng; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  uint64_t features() const override { return 0; }
  void read_config(uint64_t, std::span<uint8_t>) override {}
  Status activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t,
                  Notifier& notifier) override;
  Status process_queue(uint16_t index) override;
  void reset() override;

 private:
  Result<uint32_t> fill(const DescriptorChain& c);
  GuestMemory* mem_ = nullptr;
  Queue* queue_ = nullptr;
  Notifier* notifier_ = nullptr;
  Throttle throttle_;
};

}  // namespace husk::virtio
