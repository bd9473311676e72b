#include "vmm/devices/serial.h"

namespace husk {
namespace {
// Register offsets (DLAB=0 unless noted).
constexpr uint8_t kData = 0, kIer = 1, kIir = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;
constexpr uint8_t kIerRda = 0x01, kIerThre = 0x02;
constexpr uint8_t kIirNone = 0x01, kIirThre = 0x02, kIirRda = 0x04;
constexpr uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08;
}  // namespace

Serial::Serial(std::shared_ptr<Interrupt> irq, Output out)
    : irq_(std::move(irq)), out_(std::move(out)) {}

void Serial::set_on_rx_space(std::function<void()> cb) {
  std::lock_guard g(mu_);
  on_rx_space_ = std::move(cb);
}

size_t Serial::input_space() const {
  std::lock_guard g(mu_);
  return kRxCapacity - rx_.size();
}

size_t Serial::enqueue_input(std::span<const uint8_t> bytes) {
  bool raise = false;
  size_t n;
  {
    std::lock_guard g(mu_);
    n = std::min(bytes.size(), kRxCapacity - rx_.size());
    if (n < bytes.size()) rx_paused_ = true;
    bool was_empty = rx_.empty();
    rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    raise = n > 0 && was_empty && (ier_ & kIerRda);
  }
  if (raise) irq_->trigger();
  return n;
}

uint8_t Serial::iir() const {
  if ((ier_ & kIerRda) && rx_ready()) return kIirRda;
  if ((ier_ & kIerThre) && thre_pending_) return kIirThre;
  return kIirNone;
}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
  if (data.empty()) return;
  std::function<void()> notify;
  {
    std::lock_guard g(mu_);
    data[0] = offset < 8 ? read_reg(static_cast<uint8_t>(offset)) : 0xff;
    for (size_t i = 1; i < data.size(); ++i) data[i] = 0;
    if (rx_paused_ && rx_.size() < kRxCapacity / 2) {
      rx_paused_ = false;
      notify = on_rx_space_;
    }
  }
  if (notify) notify();
}

uint8_t Serial::read_reg(uint8_t reg) {
  switch (reg) {
    case kData: {
      if (dlab()) return dll_;
      if (!rx_ready()) return 0;
      uint8_t b = rx_.front();
      rx_.pop_front();
      return b;
    }
    case kIer: return dlab() ? dlm_ : ier_;
    case kIir: {
      uint8_t v = iir();
      if (v == kIirThre) thre_pending_ = false;  // reading IIR acknowledges THRE
      return v;
    }
    case kLcr: return lcr_;
    case kMcr: return mcr_;
    case kLsr: return static_cast<uint8_t>(kLsrThre | kLsrTemt | (rx_ready() ? kLsrDr : 0));
    case kMsr:
      if (loopback()) {
        // Loopback wires the modem control outputs back to the status inputs; Linux's probe
        // checks exactly this.
        uint8_t v = 0;
        if (mcr_ & kMcrRts) v |= kMsrCts;
        if (mcr_ & kMcrDtr) v |= kMsrDsr;
        if (mcr_ & kMcrOut1) v |= kMsrRi;
        if (mcr_ & kMcrOut2) v |= kMsrDcd;
        return v;
      }
      return msr_;
    case kScr: return scr_;
    default: return 0xff;
  }
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty() || offset >= 8) return;
  bool raise = false;
  int out_byte = -1;
  {
    std::lock_guard g(mu_);
    uint8_t before = iir();
    write_reg(static_cast<uint8_t>(offset), data[0]);
    if (offset == kData && !dlab()) {
      if (loopback()) {
        if (rx_.size() < kRxCapacity) rx_.push_back(data[0]);
      } else {
        out_byte = data[0];
      }
    }
    uint8_t after = iir();
    // An edge whenever a new interrupt condition appears (THRE after each byte, or the guest
    // enabling an interrupt whose condition already holds).
    raise = after != kIirNone && (after != before || (offset == kData && !dlab()));
  }
  if (out_byte >= 0 && out_) out_(static_cast<uint8_t>(out_byte));
  if (raise) irq_->trigger();
}

void Serial::write_reg(uint8_t reg, uint8_t v) {
  switch (reg) {
    case kData:
      if (dlab()) dll_ = v;
      else thre_pending_ = true;  // the byte is "sent" at once: THR is empty again
      break;
    case kIer:
      if (dlab()) {
        dlm_ = v;
      } else {
        // Enabling THRE while THR is empty (always, here) raises it, as on real UARTs.
        if ((v & kIerThre) && !(ier_ & kIerThre)) thre_pending_ = true;
        ier_ = v & 0x0f;
      }
      break;
    case kLcr: lcr_ = v; break;
    case kMcr: mcr_ = v & 0x1f; break;
    case kScr: scr_ = v; break;
    default: break;  // FCR (no FIFO), LSR and MSR are read-only here
  }
}

void Serial::save(snapshot::Writer& w) const {
  std::lock_guard g(mu_);
  for (uint8_t v : {ier_, lcr_, mcr_, msr_, scr_, dll_, dlm_}) w.u8(v);
  w.boolean(thre_pending_);
}

void Serial::restore(snapshot::Reader& r) {
  std::lock_guard g(mu_);
  for (uint8_t* v : {&ier_, &lcr_, &mcr_, &msr_, &scr_, &dll_, &dlm_}) *v = r.u8("serial register");
  thre_pending_ = r.boolean("serial THRE pending");
}

}  // namespace husk
