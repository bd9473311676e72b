// How a device raises its interrupt, without knowing the transport or KVM (the KVM layer's
// irqfd implements it in production, a counter in tests).
#pragma once

namespace husk {

class Interrupt {
 public:
  virtual ~Interrupt() = default;
  // Injects one edge. Safe from any thread.
  virtual void trigger() = 0;
};

}  // namespace husk
