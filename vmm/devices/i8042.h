// The i8042 keyboard controller, only as far as a guest's reboot path needs it: Linux with
// `reboot=k` pulses the CPU reset line by writing 0xfe to the command port.
#pragma once

#include <functional>

#include "vmm/devices/bus.h"

namespace husk {

class I8042 : public BusDevice {
 public:
  static constexpr uint64_t kBase = 0x60;  // data 0x60, command/status 0x64
  static constexpr uint64_t kLen = 5;
  explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::function<void()> on_reset_;
};

}  // namespace husk
