// Intel MultiProcessor Specification 1.4 table: how a guest without ACPI learns its CPUs, the
// IOAPIC and how ISA IRQs reach it.
#pragma once

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "vmm/memory/guest_memory.h"

namespace husk::x86 {

constexpr unsigned kMaxVcpus = 254;  // 8-bit APIC ids, 0xff is broadcast, one id for the IOAPIC
constexpr unsigned kIoapicPins = 24;

// Serialized table (floating pointer followed by the configuration table) for `cpus` vCPUs,
// meant to be written at `addr`.
Result<std::vector<uint8_t>> build_mptable(unsigned cpus, uint64_t addr);
Status write_mptable(GuestMemory& mem, unsigned cpus);

}  // namespace husk::x86
