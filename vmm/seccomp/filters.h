// husk-vmm's seccomp allowlists, one per thread kind, installed before any guest code runs:
// the event-loop thread (the main thread: virtio queues, host sockets, timers, teardown) and
// each vCPU thread (KVM_RUN and the MMIO/port I/O handlers it calls). Every line of a list says
// why the call is needed; shared_rules() holds what every thread does (memory, locks, signals,
// logging). Lists are short on purpose (Firecracker: ~27 for vCPUs, ~50 for the VMM thread):
// a call missing from a list kills husk-vmm with SIGSYS, which the device and containerd test
// suites, run with the filters on, would show.
#pragma once

#include <vector>

#include "common/seccomp.h"

namespace husk::vmm_seccomp {

const std::vector<seccomp::Rule>& shared_rules();
const std::vector<seccomp::Rule>& vcpu_rules();
const std::vector<seccomp::Rule>& event_loop_rules();
// Added to the event loop's list when the control API is on (--api).
const std::vector<seccomp::Rule>& api_rules();

}  // namespace husk::vmm_seccomp
