// What the VMM needs from an architecture. x86_64 is the only backend today; an aarch64 one
// (GIC, PL011, device tree through libfdt, PSCI) implements the same interface.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "vmm/boot/boot_config.h"
#include "vmm/boot/images.h"
#include "vmm/devices/bus.h"
#include "vmm/devices/interrupt.h"
#include "vmm/devices/serial.h"
#include "vmm/kvm/kvm.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/snapshot/format.h"

namespace husk {

// Callbacks and buses the platform wires its built-in devices to.
struct DeviceWiring {
  Bus& pio;
  Bus& mmio;
  std::function<Result<std::shared_ptr<Interrupt>>(uint32_t gsi)> make_irq;
  Serial::Output console_out;
  std::function<void()> on_reset;  // guest asked for a reset: the VM stops cleanly
  std::function<void()> on_boot;   // guest wrote the boot-timer magic
};

struct PlatformDevices {
  std::shared_ptr<Serial> console;
};

class Platform {
 public:
  virtual ~Platform() = default;
  virtual std::vector<RamRegion> ram_regions(uint64_t bytes) const = 0;
  // Loads the kernel (or raw image), initrd and boot tables into guest memory. Errors here are
  // about the files and sizes the user gave; nothing needs KVM.
  virtual Status load(GuestMemory& mem, const boot::BootImages& images, const BootConfig& cfg) = 0;
  // In-kernel interrupt controller and timers; before any vCPU exists.
  virtual Status setup_vm(kvm::Vm& vm) = 0;
  virtual Status setup_vcpu(const kvm::Kvm& kvm, kvm::Vcpu& vcpu, unsigned vcpu_count) = 0;
  virtual Result<PlatformDevices> create_devices(DeviceWiring& wiring) = 0;
  // MMIO window and interrupt line of virtio-mmio device number `index`.
  struct MmioSlot {
    uint64_t base;
    uint32_t irq;
  };
  virtual Result<MmioSlot> virtio_slot(unsigned index) const = 0;

  // Snapshots: the in-kernel interrupt controllers, timers and clock, then each vCPU, with every
  // vCPU stopped outside KVM_RUN. Restore runs on a VM built by setup_vm/setup_vcpu, before any
  // vCPU runs.
  virtual Status save_vm(const kvm::Vm& vm, snapshot::Writer& w) = 0;
  virtual Status restore_vm(kvm::Vm& vm, snapshot::Reader& r) = 0;
  virtual Status save_vcpu(const kvm::Kvm& kvm, const kvm::Vcpu& vcpu, snapshot::Writer& w) = 0;
  virtual Status restore_vcpu(const kvm::Kvm& kvm, kvm::Vcpu& vcpu, snapshot::Reader& r) = 0;

  // Where a vCPU stood when the guest stopped on a fault it could not handle (a triple fault),
  // for the error message: the only clue a guest that died before printing anything leaves.
  virtual std::string describe_vcpu(const kvm::Vcpu& vcpu) const = 0;
};

std::unique_ptr<Platform> make_platform();

}  // namespace husk
