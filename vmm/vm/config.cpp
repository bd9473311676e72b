#include "vmm/vm/config.h"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "common/inherited_fd.h"
#include "vmm/arch/x86_64/mptable.h"

namespace husk {
namespace {

std::vector<std::string> split_options(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// Parses "KEY=positive integer" into *out; false if the text is not that key.
bool parse_limit(const std::string& opt, const char* key, uint64_t* out) {
  std::string prefix = std::string(key) + "=";
  if (opt.rfind(prefix, 0) != 0) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(opt.c_str() + prefix.size(), &end, 10);
  if (errno || end == opt.c_str() + prefix.size() || *end || v == 0) return false;
  *out = v;
  return true;
}

}  // namespace

Result<VmConfig> parse_args(int argc, const char* const* argv, bool* exit_ok) {
  *exit_ok = false;
  VmConfig c;
  std::string console = "stdio";
  std::optional<std::string> cmdline;
  CLI::App app{"husk-vmm: a minimal KVM virtual machine monitor for microVMs", "husk-vmm"};
  app.set_version_flag("--version", "husk-vmm 0.1.0");
  bool print_cmdline = false;
  app.add_flag("--print-cmdline", print_cmdline, "Print the default kernel command line and exit (benchmarks give it to peer VMMs)");
  auto* kernel = app.add_option("--kernel", c.boot.kernel, "Guest kernel: uncompressed vmlinux (ELF)");
  auto* raw = app.add_option("--bin", c.boot.raw_image,
                             "Raw 64-bit code loaded and entered at 1 MiB (benchmarks, tests)");
  kernel->excludes(raw);
  app.add_option("--initrd", c.boot.initrd, "initramfs (cpio, optionally compressed)");
  auto* replace = app.add_option("--cmdline", cmdline, std::string("Kernel command line, replacing the default (\"") +
                                                           kDefaultCmdline + "\")");
  std::string append;
  app.add_option("--append", append, "Kernel command line words added after the default")->excludes(replace);
  app.add_option("--mem", c.boot.mem_mib, "Guest memory in MiB")->check(CLI::Range(16, 1 << 20));
  app.add_option("--vcpus", c.boot.vcpus, "Number of vCPUs")
      ->check(CLI::Range(1u, x86::kMaxVcpus));
  app.add_option("--console", console, "Guest serial console: stdio, none, a file path or fd=N (an inherited file, read-write)");
  app.add_option("--console-limit", c.console_limit,
                 "With a console file: keep at most this many bytes, the newest (0: no bound)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 40));
  std::vector<std::string> blk;
  app.add_option("--blk", blk, "virtio-blk disk: PATH[,ro][,bw=BYTES/s][,iops=N] (repeatable)");
  std::string rng;
  auto* rng_opt = app.add_option("--rng", rng, "virtio-rng entropy device: --rng, or --rng bw=BYTES/s[,iops=N] to rate limit it")
                      ->expected(0, 1);
  std::vector<std::string> fs;
  app.add_option("--fs", fs, "virtio-fs through a vhost-user backend: TAG,SOCKET or TAG,fd=N (a connected socket; repeatable)");
  std::string vsock;
  app.add_option("--vsock", vsock, "virtio-vsock: CID,PATH (host side: unix socket PATH, Firecracker protocol) or CID,fd=N (an inherited listening socket; guest-initiated streams refused), then PORT=fd=M for each host port whose one guest-initiated stream goes to inherited socket M");
  std::vector<std::string> nets;
  app.add_option("--net", nets, "virtio-net on a host tap: TAP[,MAC][,bw=B/s][,pps=N][,rx_bw=B/s][,rx_pps=N] (repeatable); TAP fd=N is an inherited tap, null a NIC with no host side");
  std::string api, restore;
  app.add_option("--api", api, "Control socket (HTTP, Firecracker's endpoints): a unix socket PATH, or fd=N (an inherited listening socket); alone (no --kernel or --restore) it waits for PUT /snapshot/load");
  auto* restore_opt = app.add_option("--restore", restore,
                                     "Start from a snapshot: STATE,MEM (files written by PUT /snapshot/create) instead of booting");
  restore_opt->excludes(kernel)->excludes(raw);
  app.add_flag("--pvh", c.boot.pvh, "Enter the kernel through its PVH ELF note");
  app.add_flag("--allow-pvm", c.allow_pvm,
               "Boot a Linux guest even when /dev/kvm is PVM (it cannot boot a stock kernel)");
  bool seccomp_log = false, no_seccomp = false;
  auto* slog = app.add_flag("--seccomp-log", seccomp_log,
                            "Log (kernel audit) system calls outside husk-vmm's seccomp allowlists instead of killing it");
  app.add_flag("--no-seccomp", no_seccomp, "Run without seccomp filters (benchmarks; not for untrusted guests)")->excludes(slog);
  app.add_flag("--test-forbidden-syscall", c.test_forbidden_syscall)->group("");  // tests only: see config.h
  app.add_option("--log-level", c.log_level, "0 error, 1 warning, 2 info, 3 debug")
      ->check(CLI::Range(0, 3));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    *exit_ok = true;
    return Error{app.help()};
  } catch (const CLI::CallForVersion&) {
    *exit_ok = true;
    return Error{"husk-vmm 0.1.0\n"};
  } catch (const CLI::ParseError& e) {
    return make_error("%s (see --help)", e.what());
  }
  if (seccomp_log) c.seccomp = seccomp::Mode::kLog;
  if (no_seccomp) c.seccomp = seccomp::Mode::kOff;
  if (print_cmdline) {
    *exit_ok = true;
    return Error{std::string(kDefaultCmdline) + "\n"};
  }
  if (!restore.empty()) {
    auto comma = restore.find(',');
    if (comma == std::string::npos || comma == 0 || comma + 1 == restore.size())
      return make_error("--restore needs STATE,MEM (the snapshot's state and memory files)");
    c.restore_state = restore.substr(0, comma);
    c.restore_mem = restore.substr(comma + 1);
    if (c.boot.initrd) return make_error("--initrd cannot be given with --restore: the snapshot holds the guest's memory");
  } else if (c.boot.kernel.empty() && c.boot.raw_image.empty()) {
    if (api.empty()) return make_error("--kernel (or --bin, or --restore, or --api to load a snapshot through it) is required (see --help)");
    if (c.boot.initrd) return make_error("--initrd needs --kernel (a snapshot loaded through --api holds the guest's memory)");
    c.await_load = true;
  }
  if (!api.empty()) {
    if (int fd; is_fd_spec(api, &fd)) c.api_fd = fd;
    else c.api_path = api;
  }
  if (c.boot.initrd && !c.boot.raw_image.empty()) return make_error("--initrd needs --kernel");
  if (c.boot.pvh && !c.boot.raw_image.empty()) return make_error("--pvh needs --kernel");
  c.boot.cmdline = cmdline.value_or(kDefaultCmdline);
  if (!append.empty()) c.boot.cmdline += " " + append;
  if (const char* root = std::getenv("HUSK_SYSFS_ROOT"); root && *root) c.sysfs_root = root;
  if (const char* dev = std::getenv("HUSK_KVM_DEVICE"); dev && *dev) c.kvm_device = dev;
  for (const auto& b : blk) {
    virtio::BlockConfig d;
    auto parts = split_options(b);
    d.path = parts[0];
    for (size_t i = 1; i < parts.size(); ++i) {
      if (parts[i] == "ro") d.read_only = true;
      else if (!parse_limit(parts[i], "bw", &d.limit.bytes_per_sec) &&
               !parse_limit(parts[i], "iops", &d.limit.ops_per_sec))
        return make_error("--blk %s: unknown option '%s' (ro, bw=BYTES/s, iops=N)", b.c_str(), parts[i].c_str());
    }
    if (d.path.empty()) return make_error("--blk needs a path");
    c.disks.push_back(d);
  }
  if (rng_opt->count() > 0) {
    c.rng = true;
    for (const auto& part : rng.empty() ? std::vector<std::string>{} : split_options(rng))
      if (!parse_limit(part, "bw", &c.rng_limit.bytes_per_sec) && !parse_limit(part, "iops", &c.rng_limit.ops_per_sec))
        return make_error("--rng %s: unknown option '%s' (bw=BYTES/s, iops=N)", rng.c_str(), part.c_str());
  }
  for (size_t i = 0; i < nets.size(); ++i) {
    virtio::NetConfig n;
    auto parts = split_options(nets[i]);
    n.tap = parts[0];
    // Default: a locally administered unicast MAC, distinct per interface.
    char mac[18];
    std::snprintf(mac, sizeof mac, "06:00:00:00:00:%02zx", (i + 1) & 0xff);
    std::string mac_text = mac;
    for (size_t j = 1; j < parts.size(); ++j) {
      if (parts[j].find(':') != std::string::npos) mac_text = parts[j];
      else if (!parse_limit(parts[j], "bw", &n.tx_limit.bytes_per_sec) &&
               !parse_limit(parts[j], "pps", &n.tx_limit.ops_per_sec) &&
               !parse_limit(parts[j], "rx_bw", &n.rx_limit.bytes_per_sec) &&
               !parse_limit(parts[j], "rx_pps", &n.rx_limit.ops_per_sec))
        return make_error("--net %s: unknown option '%s' (MAC, bw=, pps=, rx_bw=, rx_pps=)", nets[i].c_str(), parts[j].c_str());
    }
    auto parsed = virtio::parse_mac(mac_text);
    if (!parsed) return make_error("--net %s: %s", nets[i].c_str(), parsed.error().message.c_str());
    n.mac = *parsed;
    if (n.tap.empty()) return make_error("--net needs a tap name");
    c.nics.push_back(n);
  }
  for (const auto& f : fs) {
    auto comma = f.find(',');
    if (comma == std::string::npos || comma == 0 || comma + 1 == f.size())
      return make_error("--fs needs TAG,SOCKET (for example share,/run/virtiofsd.sock)");
    c.filesystems.push_back(virtio::FsConfig{f.substr(0, comma), f.substr(comma + 1)});
  }
  if (!vsock.empty()) {
    auto comma = vsock.find(',');
    char* end = nullptr;
    unsigned long long cid = std::strtoull(vsock.c_str(), &end, 10);
    if (comma == std::string::npos || end != vsock.c_str() + comma || comma == 0)
      return make_error("--vsock needs CID,PATH (for example 3,/run/vm.vsock)");
    // CID,PATH|fd=N[,PORT=fd=M]...
    auto parts = split_options(vsock.substr(comma + 1));
    const std::string& where = parts[0];
    if (int fd; is_fd_spec(where, &fd)) c.vsock = virtio::VsockConfig{cid, "", fd, {}};
    else c.vsock = virtio::VsockConfig{cid, where, -1, {}};
    for (size_t i = 1; i < parts.size(); ++i) {
      auto eq = parts[i].find('=');
      int fd = -1;
      char* pend = nullptr;
      unsigned long port = std::strtoul(parts[i].c_str(), &pend, 10);
      if (eq == std::string::npos || pend != parts[i].c_str() + eq || eq == 0 || port > 0xffffffffu ||
          !is_fd_spec(parts[i].substr(eq + 1), &fd))
        return make_error("--vsock %s: '%s' is not PORT=fd=N", vsock.c_str(), parts[i].c_str());
      c.vsock->port_fds[static_cast<uint32_t>(port)] = fd;
    }
  }
  if (console == "stdio") {
    c.console = ConsoleMode::kStdio;
  } else if (console == "none") {
    c.console = ConsoleMode::kNone;
  } else if (int fd; is_fd_spec(console, &fd)) {
    c.console = ConsoleMode::kFile;
    c.console_fd = fd;
  } else if (!console.empty()) {
    c.console = ConsoleMode::kFile;
    c.console_path = console;
  } else {
    return make_error("--console needs stdio, none or a file path");
  }
  return c;
}

}  // namespace husk
