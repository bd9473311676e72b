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
      ioctl_rule(KVM_RUN, "run the guest: the only KVM ioctl a vCPU thread makes"),
  };
  return rules;
}

}  // namespace husk::vmm_seccomp
