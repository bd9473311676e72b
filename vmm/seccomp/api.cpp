// What the control API adds to the event-loop thread (only when husk-vmm runs with --api): reading
// KVM's VM and vCPU state for a snapshot, and writing the snapshot's two files. Files may only
// be created for writing, never opened for reading: the API cannot be turned into a way to read
// host files.
#include <fcntl.h>
#include <linux/kvm.h>

#include "vmm/kvm/flex_ioctls.h"
#include "vmm/seccomp/filters.h"

namespace husk::vmm_seccomp {

using seccomp::Arg;
using seccomp::ioctl_rule;
using seccomp::Rule;

const std::vector<Rule>& api_rules() {
  static const std::vector<Rule> rules = {
      {SCMP_SYS(openat), {Arg{2, SCMP_CMP_EQ, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC}},
       "creating the snapshot's state and memory files (write-only, truncating)"},
      {SCMP_SYS(fsync), {}, "a snapshot is on disk before the API answers"},
      {SCMP_SYS(fstat), {}, "an output handed over as fd=N must be a regular file, not guest memory"},
      {SCMP_SYS(newfstatat), {}, "the same, where the C library uses fstatat(fd, \"\", AT_EMPTY_PATH)"},
      ioctl_rule(KVM_GET_PIT2, "snapshot: the PIT"),
      ioctl_rule(KVM_GET_CLOCK, "snapshot: kvmclock"),
      ioctl_rule(KVM_GET_IRQCHIP, "snapshot: PICs and IOAPIC"),
      ioctl_rule(kvm::kGetMsrIndexList, "snapshot: which MSRs to save (first snapshot only)"),
      ioctl_rule(KVM_CHECK_EXTENSION, "snapshot: the XSAVE area's size"),
      ioctl_rule(KVM_GET_MP_STATE, "snapshot: vCPU run state"),
      ioctl_rule(KVM_GET_REGS, "snapshot: vCPU registers"),
      ioctl_rule(KVM_GET_SREGS, "snapshot: vCPU system registers"),
      ioctl_rule(kvm::kGetXsave, "snapshot: vCPU FPU/SSE/AVX state"),
      ioctl_rule(kvm::kGetXsave2, "snapshot: the same, for larger XSAVE areas"),
      ioctl_rule(KVM_GET_XCRS, "snapshot: vCPU XCR0"),
      ioctl_rule(KVM_GET_DEBUGREGS, "snapshot: vCPU debug registers"),
      ioctl_rule(KVM_GET_LAPIC, "snapshot: vCPU local APIC"),
      ioctl_rule(kvm::kGetMsrs, "snapshot: vCPU MSRs"),
      ioctl_rule(KVM_GET_VCPU_EVENTS, "snapshot: pending exceptions and interrupts"),
      ioctl_rule(KVM_GET_TSC_KHZ, "snapshot: the TSC frequency the restoring host must match"),
  };
  return rules;
}

}  // namespace husk::vmm_seccomp
