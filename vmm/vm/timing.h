// Timestamps for the boot timer and the exec-to-first-KVM_RUN figure. The reference point is
// HUSK_EXEC_T0_NS (CLOCK_MONOTONIC nanoseconds, set by a benchmark harness right before exec),
// else the moment main() started.
#pragma once

#include <cstdint>

namespace husk::timing {

uint64_t now_ns();
void init();  // call first thing in main()
uint64_t since_start_us(uint64_t t_ns);

// vCPU 0's first KVM_RUN (recorded once), and the time spent inside KVM_SET_USER_MEMORY_REGION
// (SRCU synchronization in the kernel: most of the start-up cost on a nested host).
void note_first_run();
uint64_t first_run_ns();
void note_memslot_ns(uint64_t ns);
uint64_t memslot_ns();

}  // namespace husk::timing
