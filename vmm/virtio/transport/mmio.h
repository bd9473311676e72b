// virtio-mmio transport, version 2 (virtio 1.x "modern" register layout, spec section 4.2):
// feature negotiation, the device status state machine, queue setup and the device's config
// space. Register accesses come from vCPU threads, queue notifications from the event loop;
// one mutex serializes them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "vmm/devices/bus.h"
#include "vmm/devices/interrupt.h"
#include "vmm/virtio/device.h"

namespace husk::virtio {

class MmioTransport : public BusDevice, private Notifier {
 public:
  static constexpr uint64_t kSize = 0x1000;
  static constexpr uint64_t kQueueNotify = 0x50;

  MmioTransport(std::shared_ptr<Device> device, GuestMemory& mem, std::shared_ptr<Interrupt> irq);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;
  // A queue notification (from an ioeventfd, or a QueueNotify write without one).
  void notify(uint16_t queue);
  // Bytes read from one of the device's host fds.
  void host_data(int fd, std::span<const uint8_t> bytes);
  // HostIo results for the device (see virtio::HostIo).
  void set_host_io(HostIo* io) { device_->set_host_io(io); }
  void host_accept(uint64_t id, int fd);
  void host_read(uint64_t id, std::span<const uint8_t> bytes);
  void host_written(uint64_t id, bool ok);
  std::vector<int> host_fds() const { return device_->host_fds(); }
  // Whether the loop should read those fds now (Device::wants_host_data; never for a broken device).
  bool wants_host_data() const {
    std::lock_guard g(mu_);
    return !broken_ && device_->wants_host_data();
  }

  uint32_t status() const;
  // Snapshots: registers, negotiated features and queues, then what the device keeps. restore()
  // runs on a transport for a device of the same kind, before the guest runs: a device that was
  // active is activated again on its restored queues.
  Status save(snapshot::Writer& w) const;
  Status restore(snapshot::Reader& r);
  // How retry_after() reaches the event loop (set before the guest runs).
  void set_scheduler(std::function<void(uint16_t queue, uint64_t ns)> schedule) { schedule_ = std::move(schedule); }
  size_t queue_count() const { return queues_.size(); }
  // For GET /metrics: queue notifications served and interrupts raised since the start.
  struct Counters {
    uint32_t type;
    uint64_t notifications, interrupts;
  };
  Counters counters() const { return {device_->type(), notifications_.load(), interrupts_.load()}; }

 private:
  void used_buffers() override;
  void config_changed() override;
  void retry_after(uint16_t queue, uint64_t ns) override;
  uint32_t read_reg(uint64_t offset);
  void write_reg(uint64_t offset, uint32_t value);
  void set_status(uint32_t value);
  void fail(const char* why);  // DEVICE_NEEDS_RESET + config interrupt
  // Runs `call` (a device entry point returning Status) under the lock unless the device is
  // broken; a failure marks it broken. Returns false when the device was not called.
  template <class F>
  bool call_device(F&& call) {
    std::lock_guard g(mu_);
    if (broken_) return false;
    if (auto s = call(); !s) fail(s.error().message.c_str());
    return true;
  }
  void reset_locked();
  Queue* selected();

  mutable std::mutex mu_;
  std::shared_ptr<Device> device_;
  GuestMemory& mem_;
  std::shared_ptr<Interrupt> irq_;
  std::function<void(uint16_t, uint64_t)> schedule_;
  std::vector<Queue> queues_;
  uint64_t device_features_;
  uint64_t driver_features_ = 0;
  uint32_t device_features_sel_ = 0, driver_features_sel_ = 0, queue_sel_ = 0;
  uint32_t status_ = 0;
  std::atomic<uint64_t> notifications_{0}, interrupts_{0};
  std::atomic<uint32_t> interrupt_status_{0};  // also raised by devices completing later
  uint32_t config_generation_ = 0;
  bool active_ = false;
  bool broken_ = false;
};

}  // namespace husk::virtio
