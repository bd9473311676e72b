#include "vmm/kvm/host.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace husk::kvm {

std::string HostKvm::describe() const {
  if (!device) return "no /dev/kvm";
  if (pvm) return "/dev/kvm is PVM";
  return hw_virt ? "hardware KVM" : "/dev/kvm without vmx/svm";
}

HostKvm detect_host_kvm(const std::string& sysfs_root, const std::string& device, const std::string& cpuinfo) {
  HostKvm h;
  struct stat st;
  h.device = ::stat(device.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
  // The module directory exists even where the device does not (measured: kvm_pvm loaded, no
  // /dev/kvm): only a present device makes this a PVM host.
  h.pvm = ::stat((sysfs_root + "/module/kvm_pvm").c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  std::ifstream f(cpuinfo);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string w;
    while (words >> w)
      if (w == "vmx" || w == "svm") h.hw_virt = true;
    break;
  }
  return h;
}

}  // namespace husk::kvm
