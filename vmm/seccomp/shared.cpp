// What every husk-vmm thread does after the VM is built: allocate memory, take locks, exit,
// handle the kick signal, log.
#include <sys/mman.h>

#include "vmm/seccomp/filters.h"

namespace husk::vmm_seccomp {

using seccomp::Arg;
using seccomp::Rule;

namespace {
// Memory may be mapped or re-protected, never executable: an exploit cannot make a page of
// code out of data.
const Arg kNoExec{2, SCMP_CMP_MASKED_EQ, 0, PROT_EXEC};
}  // namespace

const std::vector<Rule>& shared_rules() {
  static const std::vector<Rule> rules = {
      {SCMP_SYS(read), {}, "eventfds, sockets, the console input"},
      {SCMP_SYS(write), {}, "eventfds (irqfd, wake-ups), the console file, log lines on stderr"},
      {SCMP_SYS(futex), {}, "mutexes and condition variables between vCPU and event-loop threads"},
      {SCMP_SYS(mmap), {kNoExec}, "malloc's large blocks and arenas"},
      {SCMP_SYS(mprotect), {kNoExec}, "malloc growing a thread's arena"},
      {SCMP_SYS(munmap), {}, "free of large blocks; guest memory at teardown"},
      {SCMP_SYS(mremap), {}, "realloc of large buffers"},
      {SCMP_SYS(madvise), {}, "free returning memory; glibc releasing an exiting thread's stack"},
      {SCMP_SYS(brk), {}, "malloc's main heap"},
      {SCMP_SYS(rt_sigprocmask), {}, "glibc masks signals around thread exit"},
      {SCMP_SYS(rt_sigreturn), {}, "return from the kick (SIGUSR1) and Asio's signal handlers"},
      {SCMP_SYS(exit), {}, "a thread ends"},
      {SCMP_SYS(exit_group), {}, "husk-vmm ends"},
      {SCMP_SYS(close), {}, "connections, eventfds and files dropped"},
      {SCMP_SYS(clock_gettime), {}, "rate limiters and deadlines (when the vDSO is not used)"},
      {SCMP_SYS(restart_syscall), {}, "the kernel restarting an interrupted wait"},
  };
  return rules;
}

}  // namespace husk::vmm_seccomp
