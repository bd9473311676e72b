#include "vmm/devices/interrupt.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"
#include "vmm/kvm/kvm.h"

namespace husk {

IrqfdInterrupt::IrqfdInterrupt(kvm::Vm& vm, uint32_t gsi) {
  fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd_) throw kvm::KvmError("eventfd for irqfd", errno);
  vm.register_irqfd(fd_.get(), gsi);
}

void IrqfdInterrupt::trigger() {
  uint64_t one = 1;
  // EAGAIN means the counter is saturated: an edge is already pending, nothing is lost.
  if (::write(fd_.get(), &one, sizeof one) < 0 && errno != EAGAIN)
    LOG_WARN_RATELIMITED("irqfd write failed: errno %d", errno);
}

}  // namespace husk
