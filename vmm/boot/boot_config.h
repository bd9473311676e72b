// What the platform needs to boot a guest: the files, the command line, the machine's shape.
// The VM's configuration holds one; the arch layer sees only this.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace husk {

struct BootConfig {
  std::string kernel;     // vmlinux (ELF) for the Linux boot protocol
  std::string raw_image;  // --bin: raw 64-bit code entered at 1 MiB (benchmarks, tests)
  std::optional<std::string> initrd;
  std::string cmdline;
  bool pvh = false;  // enter through the PVH note instead of the 64-bit entry
  uint64_t mem_mib = 256;
  unsigned vcpus = 1;
};

}  // namespace husk
