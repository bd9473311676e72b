// One microVM: built from a validated VmConfig (vm/builder.cpp: boot files, memory, KVM,
// devices, vCPUs), then run (vm/microvm.cpp) until the guest resets, powers off, panics or
// faults, or the host asks it to stop; each vCPU thread runs vm/vcpu_loop.cpp.
#pragma once

#include <boost/asio/io_context.hpp>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/seccomp.h"
#include "vmm/api/server.h"
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
  // Every error is a message for the user. The order is the user's: files they named are
  // checked before /dev/kvm is opened, so a typo reads the same on every host.
  static Result<std::unique_ptr<MicroVm>> build(const VmConfig& cfg);
  ~MicroVm();
  MicroVm(const MicroVm&) = delete;
  MicroVm& operator=(const MicroVm&) = delete;

  // Runs the guest; returns husk-vmm's exit status.
  int run();

  // Interrupts a vCPU's KVM_RUN (with immediate_exit set) when the VM stops.
  static constexpr int kKickSignal = 10;  // SIGUSR1

  // The control API's operations (vm/snapshot.cpp), on the event loop thread. pause() returns
  // once every vCPU is parked outside KVM_RUN with its pending I/O completed.
  Status pause();
  Status resume();
  bool paused() const;
  // Before run(): the vCPUs park before their first guest instruction, until resume()
  // (a snapshot loaded through the API without resume_vm).
  void start_paused();
  // GET /metrics: counters since this process started (JSON).
  std::string metrics() const;
  // Writes the state and memory files of a paused VM.
  Status snapshot(const std::string& state_path, const std::string& mem_path);

 private:
  explicit MicroVm(const VmConfig& cfg) : cfg_(cfg) {}
  Status build_devices();
  // Installs the vCPU thread's seccomp filter, waits at `start` until every thread has its
  // filter, then runs the vCPU until the VM stops.
  void vcpu_loop(kvm::Vcpu& vcpu, const seccomp::Program& filter, std::barrier<>& start);
  void forbidden_syscall_for_tests();
  bool handle_exit(kvm::Vcpu& vcpu);
  void kick_vcpus();
  // A vCPU thread waits here while the VM is paused.
  void park();
  // The snapshot's machine (vCPU count, RAM layout), read before anything is built.
  struct RestoreHeader {
    unsigned vcpus = 0;
    std::vector<RamRegion> regions;
  };
  static Result<RestoreHeader> read_restore_header(snapshot::Reader& r, const Platform& platform);
  // Applies the rest of the snapshot to the built VM, before any vCPU runs.
  Status restore_state(snapshot::Reader& r);
  // Joins the vCPU threads, then closes vCPUs, devices and the VM before guest memory goes
  // (see microvm.cpp for why the order matters).
  void teardown();

  VmConfig cfg_;
  StopState stop_;
  std::once_flag boot_reported_;
  // Guest memory outlives the VM that maps it: the VM's file descriptors are closed (and KVM's
  // page tables freed) in teardown() before these pages are unmapped.
  std::optional<GuestMemory> mem_;
  // Declared before every member that owns Asio objects (virtio_), so it is destroyed after them:
  // an I/O object outliving its io_context is a use-after-free (ASan found it).
  boost::asio::io_context io_;
  std::atomic<int> signal_{0};
  std::atomic<bool> forbidden_requested_{false};  // --test-forbidden-syscall
  std::unique_ptr<Platform> platform_;
  std::optional<kvm::Kvm> kvm_;
  std::optional<kvm::Vm> vm_;
  Bus pio_, mmio_;
  std::shared_ptr<ConsoleOutput> console_out_;
  PlatformDevices devices_;
  std::optional<VirtioDevices> virtio_;
  std::vector<std::unique_ptr<kvm::Vcpu>> vcpus_;
  std::vector<std::jthread> threads_;
  // Pause: `pausing_` is read by vCPU threads after every kick; changed under pause_mu_.
  // Exits served by vCPU threads (relaxed: counters only).
  std::atomic<uint64_t> io_exits_{0}, mmio_exits_{0};
  mutable std::mutex pause_mu_;
  std::condition_variable pause_cv_;
  std::atomic<bool> pausing_{false};
  size_t parked_ = 0;
  std::unique_ptr<api::Server> api_;
};

}  // namespace husk
