// The shim's configuration: a JSON file (runtime option ConfigPath, else $HUSK_SHIM_CONFIG,
// else /etc/husk/shim.json; every field optional). "mode": "vm" boots a husk microVM per
// sandbox; "host" runs husk-agent on the host instead (runc-like isolation, for tests and
// for comparing the shim path without a VM).
#pragma once

#include <string>

#include "common/result.h"

namespace husk::shim {

struct Config {
  std::string mode = "vm";
  std::string vmm = "/usr/local/bin/husk-vmm";
  std::string kernel = "/usr/local/share/husk/vmlinux";
  std::string initramfs = "/usr/local/share/husk/agent-initramfs.cpio";
  std::string virtiofsd = "/usr/lib/qemu/virtiofsd";
  std::string agent = "/usr/local/bin/husk-agent";  // host mode
  unsigned vcpus = 1;
  unsigned memory_mib = 256;
  unsigned agent_timeout_ms = 30000;
  std::string log_level = "info";
};

// Reads `path` (or the default locations when empty); a missing default file means defaults.
Result<Config> load_config(const std::string& path);

}  // namespace husk::shim
