// One microVM: built from a validated VmConfig (memory, platform, devices, vCPUs), then run
// until the guest resets, powers off, panics or faults, or the host asks it to stop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "vmm/arch/platform.h"
#include "vmm/devices/bus.h"
#include "vmm/kvm/kvm.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/vm/config.h"
#include "vmm/vm/console.h"
#include "vmm/vm/stop.h"
#include "vmm/vm/virtio_devices.h"

namespace husk {

class MicroVm {
 public:
  // Throws std::runtime_error (or kvm::KvmError) with a message for the user.
  explicit MicroVm(const VmConfig& cfg);
  ~MicroVm();
  MicroVm(const MicroVm&) = delete;
  MicroVm& operator=(const MicroVm&) = delete;

  // Runs the guest; returns husk-vmm's exit status.
  int run();

 private:
  void vcpu_loop(kvm::Vcpu& vcpu);
  bool handle_exit(kvm::Vcpu& vcpu);
  void kick_vcpus();

  VmConfig cfg_;
  StopState stop_;
  // Declared before every member that owns Asio objects (virtio_), so it is destroyed after them:
  // an I/O object outliving its io_context is a use-after-free (ASan found it).
  boost::asio::io_context io_;
  std::atomic<int> signal_{0};
  kvm::Kvm kvm_;
  kvm::Vm vm_;
  std::unique_ptr<Platform> platform_;
  GuestMemory mem_;
  Bus pio_, mmio_;
  std::shared_ptr<ConsoleOutput> console_out_;
  PlatformDevices devices_;
  VirtioDevices virtio_;
  std::vector<std::unique_ptr<kvm::Vcpu>> vcpus_;
  std::vector<std::jthread> threads_;
};

}  // namespace husk
