// The shim's configuration: a JSON file (runtime option ConfigPath, else $HUSK_SHIM_CONFIG,
// else /etc/husk/shim.json; every field optional; unknown fields are errors so a typo is not
// silently ignored). "mode": "vm" boots a husk microVM per
// sandbox; "host" runs husk-agent on the host instead (runc-like isolation, for tests and
// for comparing the shim path without a VM).
#pragma once

#include <google/protobuf/any.pb.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"

namespace husk::shim {

struct Config {
  std::string mode = "vm";
  std::string vmm = "/usr/local/bin/husk-vmm";
  std::string kernel = "/usr/local/share/husk/vmlinux";
  std::string initramfs = "/usr/local/share/husk/agent-initramfs.cpio";
  std::string virtiofsd = "/usr/lib/qemu/virtiofsd";
  // virtiofsd's cache mode: "auto" (the guest keeps names and attributes for a second, as NFS
  // does; virtiofsd's and Kata's default), "none" (every lookup asks the host: a change on the
  // host is seen at once, each path walk costs a round trip per component) or "always".
  std::string virtiofs_cache = "auto";
  std::string agent = "/usr/local/bin/husk-agent";  // host mode
  unsigned vcpus = 1;
  unsigned memory_mib = 256;
  unsigned agent_timeout_ms = 30000;
  std::string log_level = "info";
  // Per-sandbox state (sockets, helper logs, the virtio-fs share): <state_dir>/<hash>.
  std::string state_dir = "/run/husk";
  // The guest console: "file" (<state_dir>/<hash>/console.log, at most console_limit bytes, the
  // newest kept) or "off".
  std::string console = "file";
  uint64_t console_limit = 1 << 20;
  // The most a sandbox may be given through annotations or container limits (Kata's
  // default_maxvcpus / default_maxmemory); 0 in the file means this host's CPUs / memory.
  unsigned max_vcpus = 0;
  unsigned max_memory_mib = 0;
  // The jail (shim/jail.h): husk-vmm and virtiofsd started through husk-jailer, each sandbox's
  // VMM as its own uid from [jail_uid_min, jail_uid_min + jail_uid_count), all in one cgroup
  // per sandbox limited to the VM's size plus jail_memory_overhead_mib. "jail": false starts
  // them as plain root processes, with a warning: for debugging only.
  bool jail = true;
  std::string jailer = "/usr/local/bin/husk-jailer";
  unsigned jail_uid_min = 200000;
  unsigned jail_uid_count = 10000;
  unsigned jail_memory_overhead_mib = 128;
  // husk-vmm's seccomp filters: "kill" (default), "log" (--seccomp-log) or "off".
  std::string vmm_seccomp = "kill";
  // How a VM sandbox starts: "boot" its kernel and agent, or restore "template" (shim/templates.h:
  // a snapshot of a booted, agent-ready guest, made on first use under template_dir, default
  // <state_dir>/templates). Sandboxes with a pod network boot (a template has no NICs).
  std::string start = "boot";
  std::string template_dir;
  // Extra husk-vmm arguments (debugging; the tests' --test-forbidden-syscall).
  std::vector<std::string> vmm_args;
  // Not from the file: the sandbox's cgroup, from its first container's linux.cgroupsPath when
  // that is a cgroupfs path (containerd's "/<namespace>/<id>", CRI's pod cgroup); else
  // husk/<sandbox hash> (size_for fills it).
  std::string cgroup_path;
  // Not from the file: the pod's network namespace (the first container's linux.namespaces
  // network path), extended into the VM (shim/network.h); "" gives the guest only loopback.
  std::string netns_path;
};

// Reads `path` (or the default locations when empty); a missing default file means defaults.
Result<Config> load_config(const std::string& path);

// ConfigPath from the runtime options containerd sends with Create (and to `start` on stdin):
// runtimeoptions.v1.Options, what `ctr run --runtime-config-path` and CRI's
// `[…runtimes.husk.options] ConfigPath = "…"` produce. Empty when there is none; other
// option types (runc's) carry no config path and are ignored.
Result<std::string> config_path_from(const google::protobuf::Any& options);

// Annotations that size a sandbox's VM, on its first container (the CRI sandbox container).
inline constexpr const char* kVcpusAnnotation = "io.husk.vcpus";
inline constexpr const char* kMemoryAnnotation = "io.husk.memory_mib";

// The VM for a sandbox whose first container has OCI config `spec`: the annotations above
// when present (absolute, refused beyond max_vcpus / max_memory_mib); otherwise the defaults
// grown by the container's limits — vCPUs enough for its CPU quota, memory plus its memory
// limit (Kata's rule: the defaults cover the guest kernel and agent, the limit is the
// workload's), capped at the maxima. CRI's sandbox-level annotations
// (io.kubernetes.cri.sandbox-cpu-quota/-period/-memory) count as the limits of a pod.
Result<Config> size_for(Config base, const nlohmann::json& spec);

}  // namespace husk::shim
