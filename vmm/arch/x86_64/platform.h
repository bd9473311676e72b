// The x86_64 backend: 64-bit Linux boot protocol (and PVH), MP table, in-kernel PIC/IOAPIC/PIT,
// COM1 and the i8042 reset line.
#pragma once

#include <optional>

#include "vmm/arch/platform.h"
#include "vmm/arch/x86_64/cpu_state.h"

namespace husk::x86 {

class X86Platform : public Platform {
 public:
  std::vector<RamRegion> ram_regions(uint64_t bytes) const override;
  Status load(GuestMemory& mem, const boot::BootImages& images, const BootConfig& cfg) override;
  Status setup_vm(kvm::Vm& vm) override;
  Status setup_vcpu(const kvm::Kvm& kvm, kvm::Vcpu& vcpu, unsigned vcpu_count) override;
  Result<PlatformDevices> create_devices(DeviceWiring& wiring) override;
  Result<MmioSlot> virtio_slot(unsigned index) const override;
  Status save_vm(const kvm::Vm& vm, snapshot::Writer& w) override;
  Status restore_vm(kvm::Vm& vm, snapshot::Reader& r) override;
  Status save_vcpu(const kvm::Kvm& kvm, const kvm::Vcpu& vcpu, snapshot::Writer& w) override;
  Status restore_vcpu(const kvm::Kvm& kvm, kvm::Vcpu& vcpu, snapshot::Reader& r) override;
  std::string describe_vcpu(const kvm::Vcpu& vcpu) const override;

 private:
  Status load_linux(GuestMemory& mem, const boot::BootImages& images, const BootConfig& cfg);
  Status load_raw(GuestMemory& mem, const boot::OpenFile& image);

  uint64_t entry_ = 0;
  uint64_t boot_info_ = 0;
  EntryMode mode_ = EntryMode::kLong64;
  std::optional<std::vector<kvm_cpuid_entry2>> supported_cpuid_;  // fetched once per VM
  std::vector<kvm_msr_entry> msrs_;
  std::optional<std::vector<kvm_msr_entry>> snapshot_msrs_;  // the readable MSRs, found once
};

}  // namespace husk::x86
