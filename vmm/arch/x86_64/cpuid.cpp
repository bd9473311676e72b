#include "vmm/arch/x86_64/cpuid.h"

#include <algorithm>
#include <cstring>

namespace husk::x86 {
namespace {
constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheParams = 0x4;
constexpr uint32_t kLeafExtTopology = 0xb;
constexpr uint32_t kLeafV2ExtTopology = 0x1f;
constexpr uint32_t kLeafHypervisor = 0x40000000;
constexpr uint32_t kLeafHypervisorTiming = 0x40000010;
constexpr uint32_t kLeafAmdSizes = 0x80000008;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEcxTscDeadline = 1u << 24;
constexpr uint32_t kEdxHtt = 1u << 28;

unsigned bits_for(unsigned count) {
  unsigned b = 0;
  while ((1u << b) < count) ++b;
  return b;
}

void set_topology_leaf(kvm_cpuid_entry2& e, CpuidTopology t) {
  unsigned shift = bits_for(t.count);
  // Subleaf 0 is the SMT level (1 thread per core), subleaf 1 the core level; others invalid.
  switch (e.index) {
    case 0: e.eax = 0; e.ebx = 1; e.ecx = (1u << 8) | 0; break;
    case 1: e.eax = shift; e.ebx = t.count; e.ecx = (2u << 8) | 1; break;
    default: e.eax = 0; e.ebx = 0; e.ecx = e.index; break;
  }
  e.edx = t.index;
}
}  // namespace

kvm_cpuid_entry2* find_cpuid(std::vector<kvm_cpuid_entry2>& entries, uint32_t leaf, uint32_t index) {
  for (auto& e : entries) {
    if (e.function != leaf) continue;
    if ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e.index != index) continue;
    return &e;
  }
  return nullptr;
}

void setup_cpuid(std::vector<kvm_cpuid_entry2>& entries, CpuidTopology t, CpuidOptions opts) {
  const uint32_t tsc_khz = opts.tsc_khz;
  for (auto& e : entries) {
    switch (e.function) {
      case kLeafFeatures:
        // EBX[31:24] initial APIC id, [23:16] logical processors per package.
        e.ebx = (e.ebx & 0xffff) | (std::min(t.count, 255u) << 16) | (t.index << 24);
        e.ecx |= kEcxHypervisor;
        // Without the TSC-deadline timer Linux calibrates and then verifies the LAPIC timer
        // against the PIT, which fails under nested/emulated timing and leaves the guest with no
        // working timer ("APIC timer disabled due to verification failure").
        if (opts.tsc_deadline) e.ecx |= kEcxTscDeadline;
        if (t.count > 1) e.edx |= kEdxHtt; else e.edx &= ~kEdxHtt;
        break;
      case kLeafCacheParams:
        // EAX[31:26]: cores per package - 1 (Intel); threads sharing the cache stay as reported.
        if (e.eax & 0x1f) e.eax = (e.eax & 0x03ffffff) | ((std::min(t.count, 64u) - 1) << 26);
        break;
      case kLeafExtTopology:
      case kLeafV2ExtTopology:
        set_topology_leaf(e, t);
        break;
      case kLeafAmdSizes:
        // ECX[7:0] cores - 1, [15:12] bits of APIC id used for the core.
        e.ecx = (e.ecx & ~0xf0ffu) | ((t.count - 1) & 0xff) | (bits_for(t.count) << 12);
        break;
      default:
        break;
    }
  }
  // KVM already reports 0x40000000 ("KVMKVMKVM") and 0x40000001 (paravirt features: kvm-clock,
  // PV EOI, ...). Extend the range with the timing leaf: EAX = TSC kHz, EBX = APIC bus kHz
  // (KVM's local APIC timer counts at 1 GHz).
  auto* hv = find_cpuid(entries, kLeafHypervisor);
  if (!hv) {
    kvm_cpuid_entry2 e{};
    e.function = kLeafHypervisor;
    std::memcpy(&e.ebx, "KVMK", 4);
    std::memcpy(&e.ecx, "VMKV", 4);
    std::memcpy(&e.edx, "M\0\0\0", 4);
    entries.push_back(e);
    hv = &entries.back();
  }
  if (tsc_khz) {
    hv->eax = std::max(hv->eax, kLeafHypervisorTiming);
    auto* timing = find_cpuid(entries, kLeafHypervisorTiming);
    if (!timing) {
      entries.push_back(kvm_cpuid_entry2{});
      timing = &entries.back();
      timing->function = kLeafHypervisorTiming;
    }
    timing->eax = tsc_khz;
    timing->ebx = 1000000;
    timing->ecx = timing->edx = 0;
  } else if (hv->eax < 0x40000001) {
    hv->eax = 0x40000001;
  }
}

}  // namespace husk::x86
