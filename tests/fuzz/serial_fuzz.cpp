// libFuzzer target: a guest driving the UART with arbitrary register accesses, interleaved with
// host input. Each input byte pair is (op, value): the VMM must never crash or grow unbounded.
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "vmm/devices/serial.h"

namespace {
struct NullIrq : husk::Interrupt {
  void trigger() override {}
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t out = 0;
  husk::Serial uart(std::make_shared<NullIrq>(), [&](uint8_t) { ++out; });
  for (size_t i = 0; i + 1 < size; i += 2) {
    uint8_t op = data[i], v = data[i + 1];
    uint64_t reg = op & 0x0f;  // includes offsets past the 8 registers
    switch (op >> 4) {
      case 0: uart.write(reg, std::span<const uint8_t>(&v, 1)); break;
      case 1: {
        uint8_t r[8];
        uart.read(reg, std::span<uint8_t>(r, 1 + (v & 7)));
        break;
      }
      case 2: {
        uint8_t in[64] = {};
        uart.enqueue_input(std::span<const uint8_t>(in, v % sizeof in));
        break;
      }
      default: break;
    }
  }
  if (uart.input_space() > husk::Serial::kRxCapacity) abort();
  return 0;
}
