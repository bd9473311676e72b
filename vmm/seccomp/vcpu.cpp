// A vCPU thread: KVM_RUN, and the device code a guest's MMIO and port I/O exits reach
// (transport registers and device activation, serial output, the i8042 reset).
#include <linux/kvm.h>

#include "vmm/seccomp/filters.h"

namespace husk::vmm_seccomp {

using seccomp::ioctl_rule;
using seccomp::Rule;

const std::vector<Rule>& vcpu_rules() {
  static const std::vector<Rule> rules = {
      ioctl_rule(KVM_RUN, "run the guest: the only ioctl a vCPU thread makes"),
      {SCMP_SYS(pread64), {}, "the bounded console file keeping its newest half"},
      {SCMP_SYS(pwrite64), {}, "serial output into the bounded console file"},
      {SCMP_SYS(ftruncate), {}, "the bounded console file dropping its older half"},
      {SCMP_SYS(sendmsg), {}, "vhost-user messages (with fds) when the guest activates or resets virtio-fs"},
      {SCMP_SYS(recvfrom), {}, "vhost-user replies on activation"},
      {SCMP_SYS(dup), {}, "vsock activation hands the listener to the event loop"},
      {SCMP_SYS(epoll_ctl), {}, "Asio waking the event loop when a vCPU posts work to it"},
      {SCMP_SYS(timerfd_settime), {}, "Asio re-arming its timer when a device scheduled a retry or deadline from a vCPU"},
      {SCMP_SYS(sched_yield), {}, "lock back-off in the C++ runtime"},
      {SCMP_SYS(tgkill), {}, "a stopping VM kicks the other vCPUs out of KVM_RUN"},
      {SCMP_SYS(getpid), {}, "tgkill needs the process id"},
  };
  return rules;
}

}  // namespace husk::vmm_seccomp
