// husk-vmm's validated configuration: parsed from the command line once, then handed to the
// builder. Nothing downstream re-validates user input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/seccomp.h"
#include "vmm/boot/boot_config.h"
#include "vmm/virtio/blk/block.h"
#include "vmm/virtio/fs/fs.h"
#include "vmm/virtio/net/net.h"
#include "vmm/virtio/vsock/vsock.h"

namespace husk {

enum class ConsoleMode { kStdio, kFile, kNone };

struct VmConfig {
  BootConfig boot;             // kernel or raw image, initrd, command line, vCPUs, memory
  ConsoleMode console = ConsoleMode::kStdio;
  std::string console_path;    // for kFile
  int console_fd = -1;         // for kFile: an inherited file instead of console_path
  uint64_t console_limit = 1 << 20;  // for kFile: bytes kept (the newest); 0 = unbounded
  bool allow_pvm = false;      // try to boot Linux even on PVM (it will not get far)
  // Where KVM is looked for. $HUSK_SYSFS_ROOT and $HUSK_KVM_DEVICE point them elsewhere, so
  // tests prove the PVM refusal and the no-KVM message on any host.
  std::string sysfs_root = "/sys";
  std::string kvm_device = "/dev/kvm";
  int log_level = 2;
  std::vector<virtio::BlockConfig> disks;  // --blk PATH[,ro], in order: /dev/vda, /dev/vdb...
  bool rng = false;                        // --rng: virtio-rng backed by getrandom
  virtio::RateLimit rng_limit;             // --rng bw=,iops=
  std::vector<virtio::NetConfig> nics;     // --net TAP[,MAC]: eth0, eth1...
  std::optional<virtio::VsockConfig> vsock;  // --vsock CID,PATH
  std::vector<virtio::FsConfig> filesystems;   // --fs TAG,SOCKET (virtiofsd, sees a bounce area only)
  // Per-thread allowlists (vmm/seccomp/), installed before any guest code runs: kill by
  // default, --seccomp-log to log instead, --no-seccomp for none (benchmarks compare).
  // Sanitizer builds default to none: their runtimes fork a symbolizer and ptrace for leak
  // checks, which no allowlist of ours should contain.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  seccomp::Mode seccomp = seccomp::Mode::kOff;
#else
  seccomp::Mode seccomp = seccomp::Mode::kKill;
#endif
  // --api PATH|fd=N: the control socket (vmm/api/): pause, resume, snapshot.
  std::string api_path;
  int api_fd = -1;
  // --restore STATE,MEM: start from a snapshot instead of booting. The devices given on the
  // command line must be the snapshotted VM's, in the same order (new backends: another vsock
  // socket, tap or disk file); --kernel, --initrd, --mem and --vcpus come from the snapshot.
  std::string restore_state, restore_mem;
  // --api with no --kernel, --bin or --restore: wait for PUT /snapshot/load (vm/snapshot_load.h).
  bool await_load = false;
  // Test-only: on SIGUSR2, vCPU 0 makes a call outside its allowlist (opens /etc/shadow), so
  // tests prove the filter kills husk-vmm and that the shim reports it.
  bool test_forbidden_syscall = false;
};

// The guest command line every husk VM starts from: serial console, reset (not halt) on reboot
// and panic so husk-vmm exits, no timer or i8042 probing. --append adds to it; --cmdline
// replaces it.
constexpr const char* kDefaultCmdline =
    "console=ttyS0 reboot=k panic=-1 no_timer_check i8042.noaux i8042.nomux "
    "i8042.dumbkbd 8250.nr_uarts=1 quiet";

// Parses argv. Returns the config, or an error message for the user. `--help` and `--version`
// come back as an Error whose message is the text to print, with `*exit_ok` set.
Result<VmConfig> parse_args(int argc, const char* const* argv, bool* exit_ok);

}  // namespace husk
