// The KVM side of a device interrupt: an eventfd registered as an irqfd, so trigger() is one
// write(2) from any thread and the kernel injects the edge.
#pragma once

#include <cstdint>
#include <memory>

#include "common/result.h"
#include "common/unique_fd.h"
#include "vmm/devices/interrupt.h"
#include "vmm/kvm/kvm.h"

namespace husk::kvm {

class IrqfdInterrupt : public Interrupt {
 public:
  static Result<std::shared_ptr<IrqfdInterrupt>> create(Vm& vm, uint32_t gsi);
  explicit IrqfdInterrupt(UniqueFd fd) : fd_(std::move(fd)) {}
  void trigger() override;

 private:
  UniqueFd fd_;
};

}  // namespace husk::kvm
