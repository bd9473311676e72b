// The event-loop thread (husk-vmm's main thread once the VM is built): virtio queue
// notifications and the devices' back ends (disk files, taps, vsock streams, entropy), Asio's
// reactor and timers, host signals, and the teardown after the loop.
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/socket.h>

#include "vmm/seccomp/filters.h"

namespace husk::vmm_seccomp {

using seccomp::Arg;
using seccomp::ioctl_rule;
using seccomp::Rule;

const std::vector<Rule>& event_loop_rules() {
  static const std::vector<Rule> rules = {
      {SCMP_SYS(epoll_wait), {}, "Asio's reactor waits"},
      {SCMP_SYS(epoll_pwait), {}, "Asio's reactor waits (glibc's epoll_wait)"},
      {SCMP_SYS(readv), {}, "tap frames in, Asio descriptor reads"},
      {SCMP_SYS(writev), {}, "tap frames out, Asio descriptor writes"},
      {SCMP_SYS(preadv), {}, "virtio-blk scattered reads"},
      {SCMP_SYS(pwritev), {}, "virtio-blk scattered writes"},
      {SCMP_SYS(fdatasync), {}, "virtio-blk flush"},
      {SCMP_SYS(getrandom), {}, "virtio-rng"},
      {SCMP_SYS(accept), {}, "host connections to the vsock socket (Asio's acceptor)"},
      {SCMP_SYS(accept4), {}, "host connections to the vsock socket"},
      {SCMP_SYS(socket), {Arg{0, SCMP_CMP_EQ, AF_UNIX}}, "guest-initiated vsock streams: unix sockets only"},
      {SCMP_SYS(connect), {}, "guest-initiated vsock streams to PATH_<port>"},
      {SCMP_SYS(recvmsg), {}, "Asio socket reads"},
      {SCMP_SYS(sendto), {}, "vsock stream data"},
      {SCMP_SYS(shutdown), {}, "vsock half-close"},
      {SCMP_SYS(getsockopt), {}, "Asio reading a connect's result"},
      {SCMP_SYS(setsockopt), {}, "socket buffer sizes"},
      ioctl_rule(FIONBIO, "Asio makes descriptors non-blocking"),
      ioctl_rule(TCSETS, "restoring the user's terminal mode when the VM ends (--console stdio)"),
      {SCMP_SYS(fcntl), {}, "non-blocking flags on accepted and connected sockets"},
      {SCMP_SYS(gettid), {}, "the C++ runtime naming the current thread"},
      {SCMP_SYS(rt_sigaction), {}, "Asio restoring signal dispositions as the loop ends"},
      {SCMP_SYS(unlink), {}, "removing the vsock socket we bound (--vsock CID,PATH) as the VM ends"},
      {SCMP_SYS(unlinkat), {}, "the same, where the C library uses unlinkat"},
      {SCMP_SYS(nanosleep), {}, "short waits at teardown"},
      {SCMP_SYS(clock_nanosleep), {}, "short waits at teardown"},
  };
  return rules;
}

}  // namespace husk::vmm_seccomp
