// Thin RAII layer over the KVM ioctls (the "hypervisor" layer): VMM logic never calls ioctl()
// on /dev/kvm fds directly. Setup failures throw KvmError (they happen before the guest runs
// and abort VM creation with a message); the run loop reports exits as values.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/mapping.h"
#include "common/unique_fd.h"

namespace husk::kvm {

class KvmError : public std::runtime_error {
 public:
  KvmError(const std::string& what, int err);
  int err() const { return err_; }

 private:
  int err_;
};

// True when /dev/kvm is served by PVM (kvm_pvm module), which cannot boot a stock Linux guest.
bool is_pvm();

class Vcpu;

class Kvm {
 public:
  static Kvm open(const char* path = "/dev/kvm");
  int check_extension(long cap) const;
  std::vector<kvm_cpuid_entry2> supported_cpuid() const;
  std::vector<uint32_t> msr_index_list() const;
  size_t vcpu_mmap_size() const;
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

class Vm {
 public:
  explicit Vm(const Kvm& kvm);
  void set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host);
  void create_irqchip();
  void create_pit2();
  void set_tss_addr(uint64_t addr);
  void set_identity_map_addr(uint64_t addr);
  // Registers `eventfd` so that a write to it injects an edge on `gsi`.
  void register_irqfd(int eventfd, uint32_t gsi);
  // Registers `eventfd` to be signalled by a `len`-byte guest MMIO write of `datamatch` at
  // `addr`, without an exit to user space.
  void register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, uint64_t datamatch);
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

class Vcpu {
 public:
  Vcpu(const Vm& vm, unsigned id, size_t mmap_size);
  unsigned id() const { return id_; }
  kvm_run* run_struct() const { return reinterpret_cast<kvm_run*>(run_.data()); }
  size_t run_size() const { return run_.size(); }

  kvm_regs get_regs() const;
  void set_regs(const kvm_regs& r);
  kvm_sregs get_sregs() const;
  void set_sregs(const kvm_sregs& s);
  void set_fpu(const kvm_fpu& f);
  void set_cpuid(const std::vector<kvm_cpuid_entry2>& entries);
  // Returns how many MSRs KVM accepted (it stops at the first it rejects).
  int set_msrs(const std::vector<kvm_msr_entry>& msrs);
  kvm_lapic_state get_lapic() const;
  void set_lapic(const kvm_lapic_state& l);
  uint32_t tsc_khz() const;  // 0 when unknown

  // One KVM_RUN. Returns 0, or -errno (EINTR when kicked).
  int run();

 private:
  UniqueFd fd_;
  Mapping run_;
  unsigned id_;
};

}  // namespace husk::kvm
