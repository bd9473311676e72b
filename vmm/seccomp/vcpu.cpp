// A vCPU thread: KVM_RUN. What the device code its MMIO and port I/O exits reach needs
// (transport registers and device activation, serial output, the i8042 reset) the event loop
// needs too: it is in shared.cpp.
#include <linux/kvm.h>

#include "vmm/seccomp/filters.h"

namespace husk::vmm_seccomp {

using seccomp::ioctl_rule;
using seccomp::Rule;

const std::vector<Rule>& vcpu_rules() {
  static const std::vector<Rule> rules = {
      ioctl_rule(KVM_RUN, "run the guest"),
      // Its own registers, read once when the guest triple-faults: the error message says where.
      ioctl_rule(KVM_GET_REGS, "a triple fault's registers"),
      ioctl_rule(KVM_GET_SREGS, "a triple fault's system registers"),
      ioctl_rule(KVM_GET_VCPU_EVENTS, "a triple fault's pending exception"),
  };
  return rules;
}

}  // namespace husk::vmm_seccomp
