// What each vCPU thread does: KVM_RUN, then dispatch the exit to the buses. Anything malformed
// in an exit stops this VM with a message; nothing a guest does ends the process otherwise.
#include <pthread.h>
#include <signal.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "vmm/vm/microvm.h"
#include "vmm/vm/timing.h"

namespace husk {

void MicroVm::vcpu_loop(kvm::Vcpu& vcpu, const seccomp::Program& filter, std::barrier<>& start) {
  // The kick signal must reach this thread even if the parent blocked it.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kKickSignal);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  if (auto s = filter.install(); !s) stop_.request(StopReason::kVmError, "seccomp: " + s.error().message);
  start.arrive_and_wait();

  while (!stop_.requested()) {
    if (vcpu.id() == 0) timing::note_first_run();
    int r = vcpu.run();
    if (r == -EINTR || r == -EAGAIN) {
      vcpu.run_struct()->immediate_exit = 0;
      if (vcpu.id() == 0 && forbidden_requested_.exchange(false)) forbidden_syscall_for_tests();
      // Only here, after a KVM_RUN that returned at once: it completed the MMIO or port read
      // the last exit left pending, so the registers a snapshot reads are consistent.
      if (pausing_.load()) park();
      continue;
    }
    if (r < 0) {
      stop_.request(StopReason::kVmError, std::string("KVM_RUN failed: ") + std::strerror(-r));
      return;
    }
    if (!handle_exit(vcpu)) return;
  }
}

void MicroVm::forbidden_syscall_for_tests() {
  // What an exploited device model would try first. Under the filter the process dies with
  // SIGSYS here; without one, say so (the test then fails on the exit status).
  int fd = ::open("/etc/shadow", O_RDONLY | O_CLOEXEC);
  LOG_ERROR("test hook: a forbidden system call (open /etc/shadow) returned %d: no seccomp filter stopped it", fd);
  if (fd >= 0) ::close(fd);
}

bool MicroVm::handle_exit(kvm::Vcpu& vcpu) {
  kvm_run* run = vcpu.run_struct();
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      io_exits_.fetch_add(1, std::memory_order_relaxed);
      auto& io = run->io;
      uint64_t bytes = uint64_t{io.size} * io.count;
      if (io.size == 0 || io.size > 8 || io.data_offset > vcpu.run_size() ||
          bytes > vcpu.run_size() - io.data_offset) {
        stop_.request(StopReason::kVmError, "malformed port I/O exit");
        return false;
      }
      auto* data = reinterpret_cast<uint8_t*>(run) + io.data_offset;
      for (uint32_t i = 0; i < io.count; ++i) {
        std::span<uint8_t> d(data + i * io.size, io.size);
        if (io.direction == KVM_EXIT_IO_OUT) {
          pio_.write(io.port, d);
        } else if (!pio_.read(io.port, d)) {
          std::fill(d.begin(), d.end(), 0xff);  // floating bus: no device here
        }
      }
      return true;
    }
    case KVM_EXIT_MMIO: {
      mmio_exits_.fetch_add(1, std::memory_order_relaxed);
      auto& m = run->mmio;
      if (m.len == 0 || m.len > 8) {
        stop_.request(StopReason::kVmError, "malformed MMIO exit");
        return false;
      }
      std::span<uint8_t> d(m.data, m.len);
      if (m.is_write) {
        if (!mmio_.write(m.phys_addr, d))
          LOG_DEBUG("guest wrote to unassigned MMIO 0x%llx", (unsigned long long)m.phys_addr);
      } else if (!mmio_.read(m.phys_addr, d)) {
        std::fill(d.begin(), d.end(), 0xff);
      }
      return true;
    }
    case KVM_EXIT_HLT:  // only without an in-kernel LAPIC: the CPU stopped for good
      stop_.request(StopReason::kPowerOff);
      return false;
    case KVM_EXIT_SHUTDOWN:
      stop_.request(StopReason::kTripleFault, platform_->describe_vcpu(vcpu));
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN: stop_.request(StopReason::kPowerOff); break;
        case KVM_SYSTEM_EVENT_RESET: stop_.request(StopReason::kReset); break;
        case KVM_SYSTEM_EVENT_CRASH: stop_.request(StopReason::kGuestPanic, "crash event"); break;
        default:
          stop_.request(StopReason::kVmError, "unknown system event " + std::to_string(run->system_event.type));
      }
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      stop_.request(StopReason::kVmError,
                    make_error("KVM could not enter the guest (hardware reason 0x%llx)",
                               (unsigned long long)run->fail_entry.hardware_entry_failure_reason)
                        .message);
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      stop_.request(StopReason::kVmError, "KVM internal error, suberror " + std::to_string(run->internal.suberror) +
                                              " (an instruction KVM could not emulate?)");
      return false;
    default:
      stop_.request(StopReason::kVmError, "unhandled KVM exit reason " + std::to_string(run->exit_reason));
      return false;
  }
}

}  // namespace husk
