// What kind of KVM this host offers. PVM (the kvm_pvm module: shadow-paged, guest in ring 3)
// serves /dev/kvm on our development machines and cannot boot a stock Linux guest; some
// machines of the same kind have no /dev/kvm at all. Paths are parameters so tests can point
// them at a fake sysfs and prove the checks without any KVM.
#pragma once

#include <string>

namespace husk::kvm {

struct HostKvm {
  bool device = false;    // the KVM device node exists
  bool pvm = false;       // kvm_pvm is loaded: PVM serves it
  bool hw_virt = false;   // the CPU shows vmx or svm
  // Hardware KVM: Linux guests boot here directly.
  bool hardware() const { return device && !pvm && hw_virt; }
  // "hardware KVM", "/dev/kvm is PVM", "no /dev/kvm", "/dev/kvm without vmx/svm".
  std::string describe() const;
};

HostKvm detect_host_kvm(const std::string& sysfs_root = "/sys", const std::string& device = "/dev/kvm",
                        const std::string& cpuinfo = "/proc/cpuinfo");

}  // namespace husk::kvm
