// Firecracker-compatible boot timer: the guest's init writes 123 to the first byte of the MMIO
// gap (0xd0000000 on x86) once userspace is up; the VMM reports how long boot took.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "vmm/devices/bus.h"

namespace husk {

class BootTimer : public BusDevice {
 public:
  static constexpr uint8_t kMagic = 123;
  static constexpr uint64_t kLen = 0x1000;
  // `on_boot` runs once, at the first magic write.
  explicit BootTimer(std::function<void()> on_boot) : on_boot_(std::move(on_boot)) {}
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::function<void()> on_boot_;
  std::once_flag once_;  // several vCPUs may write the magic at once
};

}  // namespace husk
