// What every husk-vmm thread does after the VM is built: allocate memory, take locks, exit,
// handle the kick signal, log; and what device code does on a vCPU thread (an MMIO exit) as well
// as on the event loop (a queue notification).
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vmm/seccomp/filters.h"

namespace husk::vmm_seccomp {

using seccomp::Arg;
using seccomp::ioctl_rule;
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
      {SCMP_SYS(pread64), {}, "the bounded console file keeping its newest half; virtio-blk reads"},
      {SCMP_SYS(pwrite64), {}, "serial output into the bounded console file; virtio-blk writes"},
      {SCMP_SYS(ftruncate), {}, "the bounded console file dropping its older half"},
      {SCMP_SYS(sendmsg), {}, "vhost-user messages (with fds) at virtio-fs's first request; Asio socket writes"},
      {SCMP_SYS(recvfrom), {}, "vhost-user replies at virtio-fs's first request; vsock stream data"},
      {SCMP_SYS(dup), {}, "vsock activation hands the listener to the event loop, which gives it to Asio"},
      {SCMP_SYS(epoll_ctl), {}, "Asio (re)registering descriptors, and waking the loop when a vCPU posts work"},
      {SCMP_SYS(timerfd_settime), {}, "Asio's timers (rate-limiter retries, vsock deadlines), armed from either thread"},
      {SCMP_SYS(sched_yield), {}, "lock back-off in the C++ runtime"},
      {SCMP_SYS(tgkill), {}, "a stopping VM kicks the vCPUs out of KVM_RUN"},
      {SCMP_SYS(getpid), {}, "tgkill and Asio's signal handling need the process id"},
      ioctl_rule(TUNSETOFFLOAD, "virtio-net activation or reset sets the tap's offloads to what the driver accepted"),
  };
  return rules;
}

}  // namespace husk::vmm_seccomp
