// What husk-agent does as PID 1 of a guest before it serves anyone: leave the initramfs for a
// tmpfs root (pivot_root cannot leave the initramfs, and containers need pivot_root), mount
// the kernel filesystems, bring up lo. And the way out: sync and reboot, which the VMM sees as
// the guest's reset and exits.
#pragma once

#include "common/result.h"

namespace husk::agent {

// If / is the initramfs, copies it to a tmpfs, frees the original, moves the tmpfs to / and
// re-executes argv (does not return then).
Status leave_initramfs(char** argv);
Status mount_guest_filesystems();
Status bring_up_loopback();
// Connects to the host's vsock `port` for a copy of the log; false if nobody listens.
bool connect_log_port(unsigned port);
[[noreturn]] void power_off();

}  // namespace husk::agent
