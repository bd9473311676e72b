// Facts about this process's mount table that helpers' confinement depends on.
#pragma once

namespace husk {

// True when "/" is the initramfs (rootfs) itself, as in the test host: pivot_root cannot move
// away from it, so confinement falls back to MS_MOVE + chroot (what runc --no-pivot does).
bool root_is_initramfs();

}  // namespace husk
