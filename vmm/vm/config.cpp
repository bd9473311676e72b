#include "vmm/vm/config.h"

#include <CLI/CLI.hpp>

#include "vmm/arch/x86_64/mptable.h"

namespace husk {

Result<VmConfig> parse_args(int argc, const char* const* argv, bool* exit_ok) {
  *exit_ok = false;
  VmConfig c;
  std::string console = "stdio";
  std::optional<std::string> cmdline;
  CLI::App app{"husk-vmm: a minimal KVM virtual machine monitor for microVMs", "husk-vmm"};
  app.set_version_flag("--version", "husk-vmm 0.1.0");
  auto* kernel = app.add_option("--kernel", c.kernel, "Guest kernel: uncompressed vmlinux (ELF)");
  auto* raw = app.add_option("--bin", c.raw_image,
                             "Raw 64-bit code loaded and entered at 1 MiB (benchmarks, tests)");
  kernel->excludes(raw);
  app.add_option("--initrd", c.initrd, "initramfs (cpio, optionally compressed)");
  app.add_option("--cmdline", cmdline, std::string("Kernel command line (default: \"") +
                                           kDefaultCmdline + "\")");
  app.add_option("--mem", c.mem_mib, "Guest memory in MiB")->check(CLI::Range(16, 1 << 20));
  app.add_option("--vcpus", c.vcpus, "Number of vCPUs")
      ->check(CLI::Range(1u, x86::kMaxVcpus));
  app.add_option("--console", console, "Guest serial console: stdio, none or a file path");
  std::vector<std::string> blk;
  app.add_option("--blk", blk, "virtio-blk disk: raw image PATH[,ro] (repeatable)");
  app.add_flag("--rng", c.rng, "virtio-rng entropy device");
  std::vector<std::string> nets;
  app.add_option("--net", nets, "virtio-net on a host tap: TAP[,MAC] (repeatable)");
  app.add_flag("--pvh", c.boot_pvh, "Enter the kernel through its PVH ELF note");
  app.add_flag("--allow-pvm", c.allow_pvm,
               "Boot a Linux guest even when /dev/kvm is PVM (it cannot boot a stock kernel)");
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
  if (c.kernel.empty() && c.raw_image.empty())
    return make_error("--kernel (or --bin) is required (see --help)");
  if (c.initrd && !c.raw_image.empty()) return make_error("--initrd needs --kernel");
  if (c.boot_pvh && !c.raw_image.empty()) return make_error("--pvh needs --kernel");
  c.cmdline = cmdline.value_or(kDefaultCmdline);
  for (const auto& b : blk) {
    virtio::BlockConfig d;
    d.path = b;
    if (auto comma = b.find(','); comma != std::string::npos) {
      d.path = b.substr(0, comma);
      if (b.substr(comma + 1) != "ro") return make_error("--blk %s: the only option is ,ro", b.c_str());
      d.read_only = true;
    }
    if (d.path.empty()) return make_error("--blk needs a path");
    c.disks.push_back(d);
  }
  for (size_t i = 0; i < nets.size(); ++i) {
    virtio::NetConfig n;
    const auto& arg = nets[i];
    auto comma = arg.find(',');
    n.tap = arg.substr(0, comma);
    // Default: a locally administered unicast MAC, distinct per interface.
    std::string mac = comma == std::string::npos
                          ? "06:00:00:00:00:" + std::string(1, "0123456789abcdef"[(i + 1) / 16]) +
                                std::string(1, "0123456789abcdef"[(i + 1) % 16])
                          : arg.substr(comma + 1);
    auto parsed = virtio::parse_mac(mac);
    if (!parsed) return make_error("--net %s: %s", arg.c_str(), parsed.error().message.c_str());
    n.mac = *parsed;
    if (n.tap.empty()) return make_error("--net needs a tap name");
    c.nics.push_back(n);
  }
  if (console == "stdio") {
    c.console = ConsoleMode::kStdio;
  } else if (console == "none") {
    c.console = ConsoleMode::kNone;
  } else if (!console.empty()) {
    c.console = ConsoleMode::kFile;
    c.console_path = console;
  } else {
    return make_error("--console needs stdio, none or a file path");
  }
  return c;
}

}  // namespace husk
