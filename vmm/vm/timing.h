// Timestamps for the boot timer and the exec-to-first-KVM_RUN figure. The reference point is
// HUSK_EXEC_T0_NS (CLOCK_MONOTONIC nanoseconds, set by a benchmark harness right before exec),
// else the moment main() started.
#pragma once

#include <cstdint>

namespace husk::timing {

uint64_t now_ns();
void init();  // call first thing in main()
uint64_t since_start_us(uint64_t t_ns);

}  // namespace husk::timing
