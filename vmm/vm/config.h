// husk-vmm's validated configuration: parsed from the command line once, then handed to the
// builder. Nothing downstream re-validates user input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "vmm/virtio/blk/block.h"
#include "vmm/virtio/fs/fs.h"
#include "vmm/virtio/net/net.h"
#include "vmm/virtio/vsock/vsock.h"

namespace husk {

enum class ConsoleMode { kStdio, kFile, kNone };

struct VmConfig {
  std::string kernel;          // vmlinux (ELF) for the Linux boot protocol
  std::string raw_image;       // --bin: raw 64-bit code entered at 1 MiB (benchmarks, tests)
  std::optional<std::string> initrd;
  std::string cmdline;
  uint64_t mem_mib = 256;
  unsigned vcpus = 1;
  ConsoleMode console = ConsoleMode::kStdio;
  std::string console_path;    // for kFile
  bool boot_pvh = false;       // enter through the PVH note instead of the 64-bit entry
  bool allow_pvm = false;      // try to boot Linux even on PVM (it will not get far)
  int log_level = 2;
  std::vector<virtio::BlockConfig> disks;  // --blk PATH[,ro], in order: /dev/vda, /dev/vdb...
  bool rng = false;                        // --rng: virtio-rng backed by getrandom
  std::vector<virtio::NetConfig> nics;     // --net TAP[,MAC]: eth0, eth1...
  std::optional<virtio::VsockConfig> vsock;  // --vsock CID,PATH
  std::vector<virtio::FsConfig> filesystems;   // --fs TAG,SOCKET (virtiofsd); guest RAM is shared
};

constexpr const char* kDefaultCmdline =
    "console=ttyS0 reboot=k panic=-1 no_timer_check i8042.noaux i8042.nomux "
    "i8042.dumbkbd 8250.nr_uarts=1 quiet";

// Parses argv. Returns the config, or an error message for the user. `--help` and `--version`
// come back as an Error whose message is the text to print, with `*exit_ok` set.
Result<VmConfig> parse_args(int argc, const char* const* argv, bool* exit_ok);

}  // namespace husk
