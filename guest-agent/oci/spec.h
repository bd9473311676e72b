// The subset of the OCI runtime spec (1.0.2 / 1.1, Linux) husk-agent runs, parsed and
// validated in one place. Everything a child process needs after fork is decided here, so
// a bad config.json fails CreateContainer with a message naming the field, never half-way
// through setting up a container.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace husk::agent::oci {

struct User {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::optional<uint32_t> umask;
  std::vector<uint32_t> additional_gids;
};

struct Rlimit {
  int resource = 0;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

// Capability sets as bitmasks over capability numbers.
struct Capabilities {
  uint64_t bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
};

struct Process {
  bool terminal = false;
  uint16_t console_rows = 0, console_cols = 0;
  User user;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::optional<Capabilities> capabilities;  // absent: keep none (runc's behaviour)
  std::vector<Rlimit> rlimits;
  bool no_new_privileges = false;
  std::optional<int> oom_score_adj;
};

struct Mount {
  std::string destination;
  std::string type;
  std::string source;
  unsigned long flags = 0;              // MS_* applied by mount(2)
  unsigned long clear_flags = 0;        // explicit rw/suid/dev/exec/... (for bind remounts)
  std::vector<unsigned long> propagation;  // MS_PRIVATE/MS_SHARED/... applied afterwards
  std::string data;                     // filesystem options
  bool bind = false;
};

struct Namespace {
  int type = 0;       // CLONE_NEW*
  std::string path;   // join this one instead of creating a new one
};

struct IdMapping {
  uint32_t container_id = 0, host_id = 0, size = 0;
};

struct Device {
  std::string path;
  char type = 'c';  // c, b, u, p
  int64_t major = 0, minor = 0;
  uint32_t file_mode = 0666;
  uint32_t uid = 0, gid = 0;
};

struct Resources {
  std::optional<int64_t> memory_limit;
  std::optional<int64_t> memory_reservation;
  std::optional<int64_t> memory_swap;  // memory + swap, as in the spec
  std::optional<uint64_t> cpu_shares;
  std::optional<int64_t> cpu_quota;
  std::optional<uint64_t> cpu_period;
  std::string cpuset_cpus, cpuset_mems;
  std::optional<int64_t> pids_limit;
  std::optional<uint16_t> blkio_weight;
  std::map<std::string, std::string> unified;  // cgroup v2 file → value
};

struct SeccompArg {
  unsigned index = 0;
  uint64_t value = 0, value_two = 0;
  int op = 0;  // enum scmp_compare
};

struct SeccompRule {
  std::vector<std::string> names;
  uint32_t action = 0;  // libseccomp SCMP_ACT_* value (errno folded in)
  std::vector<SeccompArg> args;
};

struct Seccomp {
  uint32_t default_action = 0;
  std::vector<uint32_t> architectures;  // SCMP_ARCH_*
  std::vector<SeccompRule> syscalls;
  bool log_flag = false;
};

struct Spec {
  Process process;
  std::string root_path;
  bool root_readonly = false;
  std::string hostname, domainname;
  std::vector<Mount> mounts;
  std::vector<Namespace> namespaces;
  std::vector<IdMapping> uid_mappings, gid_mappings;
  std::vector<Device> devices;
  Resources resources;
  std::string cgroups_path;
  std::vector<std::string> masked_paths, readonly_paths;
  std::map<std::string, std::string> sysctl;
  std::optional<Seccomp> seccomp;
  unsigned long rootfs_propagation = 0;  // 0: MS_SLAVE | MS_REC (runc's default)
  std::map<std::string, std::string> annotations;

  bool has_namespace(int type) const;
  const Namespace* find_namespace(int type) const;
};

// Limits that keep a hostile config.json from exhausting the agent.
inline constexpr size_t kMaxConfigBytes = 4 << 20;
inline constexpr size_t kMaxArgs = 8192;
inline constexpr size_t kMaxEnv = 8192;
inline constexpr size_t kMaxStringBytes = 128 << 10;  // execve's MAX_ARG_STRLEN
inline constexpr size_t kMaxArgvEnvBytes = 1 << 20;
inline constexpr size_t kMaxMounts = 1024;

// fstab-style mount options ("ro", "rbind", "rslave", "size=64k", ...) split into mount(2)
// flags, flags explicitly cleared, propagation changes and filesystem data. Used for
// config.json mounts and for the rootfs mounts containerd hands the shim.
struct MountOptions {
  unsigned long flags = 0;
  unsigned long clear_flags = 0;
  std::vector<unsigned long> propagation;
  std::string data;
};
Result<MountOptions> parse_mount_options(const std::vector<std::string>& options);

Result<Spec> parse_spec(std::string_view json);
Result<Process> parse_process(std::string_view json);
Result<Resources> parse_resources(std::string_view json);

// "/a/b" with no "..", no empty name beyond the leading slash, no NUL: the only shape of path
// the agent resolves inside a container's root.
Status check_container_path(const std::string& what, const std::string& path);

}  // namespace husk::agent::oci
