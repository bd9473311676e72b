#include "vmm/kvm/irqfd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace husk::kvm {

Result<std::shared_ptr<IrqfdInterrupt>> IrqfdInterrupt::create(Vm& vm, uint32_t gsi) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return make_error("eventfd for irqfd: %s", std::strerror(errno));
  HUSK_TRY(vm.register_irqfd(fd.get(), gsi));
  return std::make_shared<IrqfdInterrupt>(std::move(fd));
}

void IrqfdInterrupt::trigger() {
  uint64_t one = 1;
  // EAGAIN means the counter is saturated: an edge is already pending, nothing is lost.
  if (::write(fd_.get(), &one, sizeof one) < 0 && errno != EAGAIN)
    LOG_WARN_RATELIMITED("irqfd write failed: errno %d", errno);
}

}  // namespace husk::kvm
