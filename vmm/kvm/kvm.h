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
