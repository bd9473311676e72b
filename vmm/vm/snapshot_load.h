// husk-vmm --api PATH with no --kernel and no --restore: Firecracker's way to restore, a VMM
// that waits on its control socket for PUT /snapshot/load, builds the VM from the files the
// request names, and then serves the same socket for that VM.
#pragma once

#include "vmm/vm/config.h"

namespace husk {

// Serves the control API until a snapshot loads (every other request is refused), then runs
// the VM; returns husk-vmm's exit status.
int run_after_snapshot_load(const VmConfig& cfg);

}  // namespace husk
