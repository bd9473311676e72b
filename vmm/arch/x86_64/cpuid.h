// Per-vCPU CPUID from what KVM supports: topology (APIC ids, core counts), the hypervisor bit and
// KVM paravirt leaves (so the guest uses kvm-clock), and the TSC frequency leaf.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace husk::x86 {

struct CpuidTopology {
  unsigned index;  // this vCPU, also its APIC id
  unsigned count;  // vCPUs in the VM (one socket, one thread per core)
};

struct CpuidOptions {
  uint32_t tsc_khz = 0;       // 0 leaves the timing leaf out
  bool tsc_deadline = false;  // KVM_CAP_TSC_DEADLINE_TIMER: KVM emulates it but never reports it
};

// Rewrites `entries` (from KVM_GET_SUPPORTED_CPUID) for one vCPU.
void setup_cpuid(std::vector<kvm_cpuid_entry2>& entries, CpuidTopology topo, CpuidOptions opts);

// Finds an entry by leaf/subleaf (subleaf ignored for leaves without KVM_CPUID_FLAG_SIGNIFCANT_INDEX).
kvm_cpuid_entry2* find_cpuid(std::vector<kvm_cpuid_entry2>& entries, uint32_t leaf, uint32_t index = 0);

}  // namespace husk::x86
