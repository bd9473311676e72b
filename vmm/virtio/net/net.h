// virtio-net (spec 5.1) on a host tap device: one receive and one transmit queue, MAC address
// in config space, checksum and TSO offloads. Frames carry the 12-byte virtio_net_hdr_v1, which is
// also the tap's vnet header, so headers (and with them the offload requests) pass through unchanged.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "vmm/virtio/device.h"

namespace husk::virtio {

constexpr const char* kNullBackend = "null";

struct NetConfig {
  // Host interface name (created if absent, needs CAP_NET_ADMIN), or "fd=N": a tap opened by the
  // shim inside the pod's network namespace, so husk-vmm needs neither the namespace nor privilege.
  // Or "null": a NIC with no host side (what the guest sends is dropped, nothing arrives), for
  // the VM a template snapshot is made from; its copies get real taps on restore.
  std::string tap;
  std::array<uint8_t, 6> mac{};  // guest MAC
  RateLimit tx_limit;            // transmit bytes and packets per second, both optional
  RateLimit rx_limit;            // receive side, the same
};

// Parses "aa:bb:cc:dd:ee:ff".
Result<std::array<uint8_t, 6>> parse_mac(const std::string& s);

class Net : public Device {
 public:
  static Result<std::shared_ptr<Net>> open(const NetConfig& cfg);
  Net(UniqueFd tap, std::array<uint8_t, 6> mac, RateLimit tx_limit = {}, RateLimit rx_limit = {});

  DeviceType type() const override { return kNet; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }
  uint64_t features() const override;
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Status activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t,
                  Notifier& notifier) override;
  Status process_queue(uint16_t index) override;
  void reset() override;
  std::vector<int> host_fds() const override { return tap_ ? std::vector<int>{tap_.get()} : std::vector<int>{}; }
  Status on_host_data(int fd, std::span<const uint8_t> frame) override;
  bool wants_host_data() const override { return !queues_ || !deferred_; }
  // TUN_F_* for TUNSETOFFLOAD from the features the driver accepted.
  static unsigned tap_offloads(uint64_t acked);

 private:
  Status transmit();
  Status deliver();  // the deferred frame, once the guest posted a buffer
  // One frame into the guest's next receive buffer; false when it must wait (no buffer posted,
  // or the receive limiter refuses for now and asked for a retry). `used` is set when a buffer
  // went back to the guest.
  Result<bool> place(std::span<const uint8_t> frame, bool& used);

  static constexpr size_t kMaxFrame = 65562;  // vnet header + 64 KiB
  UniqueFd tap_;
  std::array<uint8_t, 6> mac_;
  // At most one frame waits for a guest buffer; the tap's queue holds the rest (wants_host_data).
  std::optional<std::vector<uint8_t>> deferred_;
  GuestMemory* mem_ = nullptr;
  std::vector<Queue>* queues_ = nullptr;
  Notifier* notifier_ = nullptr;
  uint64_t dropped_ = 0;
  Throttle tx_throttle_;
  RateLimiter rx_limiter_;  // the frame waits in deferred_ while it refuses
};

}  // namespace husk::virtio
