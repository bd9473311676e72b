// How a device raises its interrupt, without knowing the transport or KVM.
#pragma once

#include <cstdint>

#include "common/unique_fd.h"

namespace husk {

class Interrupt {
 public:
  virtual ~Interrupt() = default;
  // Injects one edge. Safe from any thread.
  virtual void trigger() = 0;
};

namespace kvm {
class Vm;
}

// An eventfd registered with KVM as an irqfd on `gsi`: trigger() is one write(2), no ioctl,
// and works from device threads.
class IrqfdInterrupt : public Interrupt {
 public:
  IrqfdInterrupt(kvm::Vm& vm, uint32_t gsi);
  void trigger() override;

 private:
  UniqueFd fd_;
};

}  // namespace husk
