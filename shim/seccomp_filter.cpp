#include "shim/seccomp_filter.h"

#include <sched.h>

#include <cerrno>

#include "common/seccomp.h"

namespace husk::shim {

using seccomp::Arg;
using seccomp::Rule;

namespace {

// Masks for clone/unshare flags that would make a user namespace.
const Arg kNewUser0{0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER};

// What neither the shim nor any helper it starts (husk-jailer, husk-vmm, virtiofsd, a host
// agent and its containers' runtime) needs, and what a compromised one would reach for first.
const std::vector<Rule>& denied() {
  static const std::vector<Rule> rules = {
      {SCMP_SYS(ptrace), {}, "reading or steering another process"},
      {SCMP_SYS(process_vm_readv), {}, "reading another process's memory"},
      {SCMP_SYS(process_vm_writev), {}, "writing another process's memory"},
      {SCMP_SYS(kcmp), {}, "probing other processes' kernel objects"},
      {SCMP_SYS(kexec_load), {}, "replacing the host kernel"},
      {SCMP_SYS(kexec_file_load), {}, "replacing the host kernel"},
      {SCMP_SYS(init_module), {}, "loading kernel code"},
      {SCMP_SYS(finit_module), {}, "loading kernel code"},
      {SCMP_SYS(delete_module), {}, "unloading kernel modules"},
      {SCMP_SYS(bpf), {}, "loading eBPF programs"},
      {SCMP_SYS(perf_event_open), {}, "a large kernel attack surface, and side channels"},
      {SCMP_SYS(userfaultfd), {}, "stalling the kernel at will (a race-exploit primitive)"},
      {SCMP_SYS(io_uring_setup), {}, "a large kernel attack surface nothing of ours uses"},
      {SCMP_SYS(open_by_handle_at), {}, "opening host files by handle, past any mount namespace"},
      {SCMP_SYS(name_to_handle_at), {}, "the other half of open_by_handle_at"},
      {SCMP_SYS(reboot), {}, "the host's power"},
      {SCMP_SYS(swapon), {}, "the host's swap"},
      {SCMP_SYS(swapoff), {}, "the host's swap"},
      {SCMP_SYS(acct), {}, "host process accounting"},
      {SCMP_SYS(settimeofday), {}, "the host's clock"},
      {SCMP_SYS(clock_settime), {}, "the host's clock"},
      {SCMP_SYS(clock_adjtime), {}, "the host's clock"},
      {SCMP_SYS(adjtimex), {}, "the host's clock"},
      {SCMP_SYS(syslog), {}, "reading and clearing the host kernel's log"},
      {SCMP_SYS(iopl), {}, "raw port I/O on the host"},
      {SCMP_SYS(ioperm), {}, "raw port I/O on the host"},
      {SCMP_SYS(quotactl), {}, "host disk quotas"},
      {SCMP_SYS(lookup_dcookie), {}, "profiling interface"},
      {SCMP_SYS(vhangup), {}, "hanging up the host's terminals"},
      {SCMP_SYS(fanotify_init), {}, "watching the host's file accesses"},
      {SCMP_SYS(keyctl), {}, "the host kernel's keyrings"},
      {SCMP_SYS(add_key), {}, "the host kernel's keyrings"},
      {SCMP_SYS(request_key), {}, "the host kernel's keyrings"},
      // User namespaces give an unprivileged process a root of its own and most of the
      // kernel's attack surface; nothing of ours makes one.
      {SCMP_SYS(unshare), {kNewUser0}, "a user namespace"},
      {SCMP_SYS(clone), {kNewUser0}, "a user namespace"},
  };
  return rules;
}

}  // namespace

Status install_shim_filter() {
  auto p = seccomp::compile_denylist(denied(), EPERM);
  if (!p) return p.error();
  return p->install();
}

}  // namespace husk::shim
