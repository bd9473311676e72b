// virtio-blk (spec 5.2) backed by a raw image file: read, write, flush (fdatasync, so a guest
// `sync` reaches the disk), get-id, optional read-only.
#pragma once

#include <memory>
#include <string>

#include "common/unique_fd.h"
#include "vmm/virtio/device.h"

namespace husk::virtio {

struct BlockConfig {
  std::string path;
  bool read_only = false;
  RateLimit limit;  // bytes and requests per second, both optional
};

class Block : public Device {
 public:
  static Result<std::shared_ptr<Block>> open(const BlockConfig& cfg);
  Block(UniqueFd fd, uint64_t sectors, bool read_only, std::string id, RateLimit limit = {});

  DeviceType type() const override { return kBlock; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  uint64_t features() const override;
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Status activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t,
                  Notifier& notifier) override;
  Status process_queue(uint16_t index) override;
  void reset() override;

  uint64_t sectors() const { return sectors_; }

 private:
  // Executes one request; returns the virtio-blk status byte and the bytes written to the guest.
  uint8_t execute(const DescriptorChain& chain, uint32_t* written);

  UniqueFd fd_;
  uint64_t sectors_;
  bool read_only_;
  std::string id_;
  GuestMemory* mem_ = nullptr;
  Queue* queue_ = nullptr;
  Notifier* notifier_ = nullptr;
  Throttle throttle_;
};

}  // namespace husk::virtio
