// What the VMM needs from an architecture. x86_64 is the only backend today; an aarch64 one
// (GIC, PL011, device tree through libfdt, PSCI) implements the same interface.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "common/result.h"
#include "vmm/devices/bus.h"
#include "vmm/devices/serial.h"
#include "vmm/kvm/kvm.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/vm/config.h"

namespace husk {

// Callbacks and buses the platform wires its built-in devices to.
struct DeviceWiring {
  Bus& pio;
  Bus& mmio;
  kvm::Vm& vm;
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
  // In-kernel interrupt controller and timers; before any vCPU exists.
  virtual void setup_vm(kvm::Vm& vm) = 0;
  // Loads the kernel (or raw image), initrd and boot tables into guest memory.
  virtual Status load(GuestMemory& mem, const VmConfig& cfg) = 0;
  virtual void setup_vcpu(const kvm::Kvm& kvm, kvm::Vcpu& vcpu, unsigned vcpu_count) = 0;
  virtual Result<PlatformDevices> create_devices(DeviceWiring& wiring) = 0;
  // MMIO window and interrupt line of virtio-mmio device number `index`.
  struct MmioSlot {
    uint64_t base;
    uint32_t irq;
  };
  virtual Result<MmioSlot> virtio_slot(unsigned index) const = 0;
};

std::unique_ptr<Platform> make_platform();

}  // namespace husk
