// Thin RAII layer over the KVM ioctls (the "hypervisor" layer): VMM logic never calls ioctl()
// on /dev/kvm fds directly. Every call returns a Result naming the ioctl and errno; KVM_RUN
// reports exits as values.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/mapping.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace husk::kvm {

class Kvm {
 public:
  static Result<Kvm> open(const char* path = "/dev/kvm");
  int check_extension(long cap) const;
  Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  Result<std::vector<uint32_t>> msr_index_list() const;
  Result<size_t> vcpu_mmap_size() const;
  // Bytes of a vCPU's XSAVE state (4096 unless KVM_CAP_XSAVE2 asks for more).
  size_t xsave_size() const;
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

class Vm {
 public:
  static Result<Vm> create(const Kvm& kvm);
  Status set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host);
  Status create_irqchip();
  Status create_pit2();
  Status set_tss_addr(uint64_t addr);
  Status set_identity_map_addr(uint64_t addr);
  // Registers `eventfd` so that a write to it injects an edge on `gsi`.
  Status register_irqfd(int eventfd, uint32_t gsi);
  // Registers `eventfd` to be signalled by a `len`-byte guest MMIO write of `datamatch` at
  // `addr`, without an exit to user space.
  Status register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, uint64_t datamatch);
  // Snapshot state of the in-kernel devices: chip 0/1 are the PICs, 2 the IOAPIC.
  Result<kvm_irqchip> get_irqchip(uint32_t chip) const;
  Status set_irqchip(const kvm_irqchip& c);
  Result<kvm_pit_state2> get_pit2() const;
  Status set_pit2(const kvm_pit_state2& p);
  Result<kvm_clock_data> get_clock() const;
  Status set_clock(const kvm_clock_data& c);
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

class Vcpu {
 public:
  static Result<std::unique_ptr<Vcpu>> create(const Vm& vm, unsigned id, size_t mmap_size);
  unsigned id() const { return id_; }
  kvm_run* run_struct() const { return reinterpret_cast<kvm_run*>(run_.data()); }
  size_t run_size() const { return run_.size(); }

  Result<kvm_regs> get_regs() const;
  Status set_regs(const kvm_regs& r);
  Result<kvm_sregs> get_sregs() const;
  Status set_sregs(const kvm_sregs& s);
  Status set_fpu(const kvm_fpu& f);
  Status set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
  // How many MSRs KVM accepted (it stops at the first it rejects).
  Result<int> set_msrs(const std::vector<kvm_msr_entry>& msrs);
  Result<kvm_lapic_state> get_lapic() const;
  Status set_lapic(const kvm_lapic_state& l);
  // Snapshot state. XSAVE is a byte buffer: its size grows with the CPU's state components
  // (KVM_CAP_XSAVE2), `xsave_bytes` from Kvm::xsave_size().
  Result<kvm_fpu> get_fpu() const;
  Result<std::vector<uint8_t>> get_xsave(size_t xsave_bytes) const;
  Status set_xsave(const std::vector<uint8_t>& xsave);
  Result<kvm_xcrs> get_xcrs() const;
  Status set_xcrs(const kvm_xcrs& x);
  // Reads the MSRs whose indices are in `msrs`; returns how many (from the front) KVM read.
  Result<int> get_msrs(std::vector<kvm_msr_entry>& msrs) const;
  Result<kvm_vcpu_events> get_vcpu_events() const;
  Status set_vcpu_events(const kvm_vcpu_events& e);
  Result<kvm_mp_state> get_mp_state() const;
  Status set_mp_state(const kvm_mp_state& m);
  Result<kvm_debugregs> get_debugregs() const;
  Status set_debugregs(const kvm_debugregs& d);
  uint32_t tsc_khz() const;  // 0 when unknown

  // One KVM_RUN. Returns 0, or -errno (EINTR when kicked).
  int run();

 private:
  Vcpu(UniqueFd fd, Mapping run, unsigned id) : fd_(std::move(fd)), run_(std::move(run)), id_(id) {}
  UniqueFd fd_;
  Mapping run_;
  unsigned id_;
};

}  // namespace husk::kvm
