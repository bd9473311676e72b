// The 8250 model as Linux's driver drives it: probe, transmit by THRE interrupts, receive.
#include "vmm/devices/serial.h"

#include <gtest/gtest.h>

#include <string>

namespace husk {
namespace {

struct CountingIrq : Interrupt {
  int count = 0;
  void trigger() override { ++count; }
};

struct SerialTest : ::testing::Test {
  std::shared_ptr<CountingIrq> irq = std::make_shared<CountingIrq>();
  std::string out;
  Serial uart{irq, [this](uint8_t b) { out.push_back(static_cast<char>(b)); }};
  uint8_t in(uint64_t reg) {
    uint8_t v;
    uart.read(reg, std::span<uint8_t>(&v, 1));
    return v;
  }
  void put(uint64_t reg, uint8_t v) { uart.write(reg, std::span<const uint8_t>(&v, 1)); }
};

TEST_F(SerialTest, LinuxProbeSeesAUart) {
  put(1, 0);
  EXPECT_EQ(in(1), 0);
  put(1, 0x0f);
  EXPECT_EQ(in(1), 0x0f);  // IER holds what the driver wrote
  put(1, 0);
  put(4, 0x1a);            // loopback with RTS and OUT2
  EXPECT_EQ(in(6) & 0xf0, 0x90);
  put(4, 0x08);
  put(7, 0x5a);
  EXPECT_EQ(in(7), 0x5a);  // scratch register
  put(3, 0x80);            // DLAB: divisor latch
  put(0, 0x01);
  EXPECT_EQ(in(0), 0x01);
  put(3, 0x03);
}

TEST_F(SerialTest, TransmitRaisesThreEachByte) {
  put(1, 0x02);  // enable THRE: raises at once (THR is empty)
  EXPECT_EQ(irq->count, 1);
  EXPECT_EQ(in(2), 0x02);  // IIR: THRE, acknowledged by the read
  EXPECT_EQ(in(2), 0x01);
  put(0, 'h');
  put(0, 'i');
  EXPECT_EQ(out, "hi");
  EXPECT_EQ(irq->count, 3);
  EXPECT_EQ(in(5) & 0x60, 0x60);  // THR empty and transmitter idle
}

TEST_F(SerialTest, NoTransmitInterruptWhenDisabled) {
  put(0, 'x');
  EXPECT_EQ(out, "x");
  EXPECT_EQ(irq->count, 0);
  EXPECT_EQ(in(2), 0x01);
}

TEST_F(SerialTest, InputIsHeldUntilTheDriverListens) {
  const uint8_t msg[] = {'o', 'k'};
  EXPECT_EQ(uart.enqueue_input(msg), 2u);
  EXPECT_EQ(in(5) & 1, 0);  // driver startup drains RBR with interrupts off: nothing to lose
  EXPECT_EQ(in(0), 0);
  put(1, 0x01);             // enable receive interrupts: data appears and an edge is raised
  EXPECT_EQ(irq->count, 1);
  EXPECT_EQ(in(2), 0x04);
  EXPECT_EQ(in(5) & 1, 1);
  EXPECT_EQ(in(0), 'o');
  EXPECT_EQ(in(0), 'k');
  EXPECT_EQ(in(5) & 1, 0);
  EXPECT_EQ(in(2), 0x01);
}

TEST_F(SerialTest, InputQueueIsBoundedAndReportsSpace) {
  int resumed = 0;
  uart.set_on_rx_space([&] { ++resumed; });
  std::vector<uint8_t> big(Serial::kRxCapacity + 100, 'a');
  EXPECT_EQ(uart.enqueue_input(big), Serial::kRxCapacity);
  EXPECT_EQ(uart.input_space(), 0u);
  put(1, 0x01);
  for (size_t i = 0; i < Serial::kRxCapacity / 2 + 1; ++i) in(0);
  EXPECT_EQ(resumed, 1);
}

TEST_F(SerialTest, OutOfRangeAccessIsHarmless) {
  uint8_t v[4] = {1, 2, 3, 4};
  uart.read(9, std::span<uint8_t>(v, 4));
  EXPECT_EQ(v[0], 0xff);
  uart.write(100, std::span<const uint8_t>(v, 4));
  uart.write(0, std::span<const uint8_t>());
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace husk
