// 16450-style UART (8250 family) at COM1, as Firecracker and kvmtool emulate it: enough for
// Linux's 8250 driver to probe it, print, take input and run interrupt driven. No FIFO: the
// guest sees an 8250/16450 and sends one byte per THRE interrupt.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>

#include "vmm/devices/bus.h"
#include "vmm/devices/interrupt.h"
#include "vmm/snapshot/format.h"

namespace husk {

class Serial : public BusDevice {
 public:
  static constexpr uint64_t kCom1 = 0x3f8;
  static constexpr uint32_t kCom1Irq = 4;
  static constexpr size_t kRxCapacity = 64 * 1024;

  using Output = std::function<void(uint8_t)>;
  Serial(std::shared_ptr<Interrupt> irq, Output out);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Queues host input for the guest; returns how many bytes fit (the rest must be retried).
  size_t enqueue_input(std::span<const uint8_t> bytes);
  size_t input_space() const;
  // Called (from a vCPU thread) when the guest drained the input queue below half, so a paused
  // host reader can resume.
  void set_on_rx_space(std::function<void()> cb);

  // Snapshots: the registers; host input not yet read by the guest is not kept.
  void save(snapshot::Writer& w) const;
  void restore(snapshot::Reader& r);

 private:
  uint8_t read_reg(uint8_t reg);
  void write_reg(uint8_t reg, uint8_t value);
  bool dlab() const { return lcr_ & 0x80; }
  bool loopback() const { return mcr_ & 0x10; }
  // Host input stays invisible until the guest driver enables receive interrupts: Linux's 8250
  // startup reads and discards RBR several times, which would eat early keystrokes.
  bool rx_ready() const { return !rx_.empty() && ((ier_ & 0x01) || loopback()); }
  // Sets up the pending THRE/RDA state and returns whether an edge should be raised.
  uint8_t iir() const;

  mutable std::mutex mu_;
  std::shared_ptr<Interrupt> irq_;
  Output out_;
  std::function<void()> on_rx_space_;
  std::deque<uint8_t> rx_;
  bool rx_paused_ = false;  // enqueue_input refused bytes: tell the reader when space returns
  bool thre_pending_ = false;
  uint8_t ier_ = 0, lcr_ = 0x03, mcr_ = 0x08, msr_ = 0xb0, scr_ = 0;
  uint8_t dll_ = 0x0c, dlm_ = 0;  // 9600 baud, meaningless to a virtual UART but read back
};

}  // namespace husk
