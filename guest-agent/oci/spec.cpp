#include "guest-agent/oci/spec.h"

#include <sched.h>
#include <seccomp.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "guest-agent/oci/capabilities.h"

namespace husk::agent::oci {
namespace {

using json = nlohmann::json;

// Parsing throws SpecError with the JSON path of the offending field; the entry points turn it
// into an Error. Exceptions stay inside this file.
struct SpecError {
  std::string message;
};

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw SpecError{where + ": " + what};
}

const char* type_name(const json& j) { return j.type_name(); }

const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const json& expect_object(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, std::string("expected an object, got ") + type_name(j));
  return j;
}

const json& expect_array(const json& j, const std::string& where) {
  if (!j.is_array()) fail(where, std::string("expected an array, got ") + type_name(j));
  return j;
}

std::string get_string(const json& j, const std::string& where) {
  if (!j.is_string()) fail(where, std::string("expected a string, got ") + type_name(j));
  const auto& s = j.get_ref<const std::string&>();
  if (s.size() > kMaxStringBytes) fail(where, "string longer than " + std::to_string(kMaxStringBytes) + " bytes");
  if (s.find('\0') != std::string::npos) fail(where, "contains a NUL byte");
  return s;
}

bool get_bool(const json& j, const std::string& where) {
  if (!j.is_boolean()) fail(where, std::string("expected a boolean, got ") + type_name(j));
  return j.get<bool>();
}

uint64_t get_u64(const json& j, const std::string& where, uint64_t max = std::numeric_limits<uint64_t>::max()) {
  if (!j.is_number_integer() || (j.is_number_integer() && !j.is_number_unsigned() && j.get<int64_t>() < 0))
    fail(where, std::string("expected a non-negative integer, got ") + (j.is_number() ? j.dump() : type_name(j)));
  uint64_t v = j.get<uint64_t>();
  if (v > max) fail(where, std::to_string(v) + " is larger than " + std::to_string(max));
  return v;
}

int64_t get_i64(const json& j, const std::string& where) {
  if (!j.is_number_integer()) fail(where, std::string("expected an integer, got ") + type_name(j));
  if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail(where, "integer out of range");
  return j.get<int64_t>();
}

uint32_t get_u32(const json& j, const std::string& where) {
  return static_cast<uint32_t>(get_u64(j, where, std::numeric_limits<uint32_t>::max()));
}

std::vector<std::string> get_strings(const json& j, const std::string& where, size_t max_count) {
  expect_array(j, where);
  if (j.size() > max_count) fail(where, std::to_string(j.size()) + " entries, more than the limit of " + std::to_string(max_count));
  std::vector<std::string> out;
  out.reserve(j.size());
  for (size_t i = 0; i < j.size(); i++) out.push_back(get_string(j[i], where + "[" + std::to_string(i) + "]"));
  return out;
}

void check_path(const std::string& where, const std::string& path) {
  auto s = check_container_path(where, path);
  if (!s) throw SpecError{s.error().message};
}

User parse_user(const json& j, const std::string& where) {
  expect_object(j, where);
  User u;
  if (auto* v = field(j, "uid")) u.uid = get_u32(*v, where + ".uid");
  if (auto* v = field(j, "gid")) u.gid = get_u32(*v, where + ".gid");
  if (auto* v = field(j, "umask")) u.umask = static_cast<uint32_t>(get_u64(*v, where + ".umask", 0777));
  if (auto* v = field(j, "additionalGids")) {
    expect_array(*v, where + ".additionalGids");
    if (v->size() > 65536) fail(where + ".additionalGids", "more than 65536 groups");
    for (size_t i = 0; i < v->size(); i++)
      u.additional_gids.push_back(get_u32((*v)[i], where + ".additionalGids[" + std::to_string(i) + "]"));
  }
  if (field(j, "username")) fail(where + ".username", "is for Windows containers; give uid and gid");
  return u;
}

uint64_t parse_cap_set(const json& j, const std::string& where) {
  uint64_t mask = 0;
  for (const auto& name : get_strings(j, where, 256)) {
    auto cap = capability_from_name(name);
    // Like runc, a capability this kernel or libcap does not know is left out rather than
    // failing the container: specs written for newer kernels still run.
    if (!cap || *cap > last_capability()) continue;
    mask |= 1ULL << *cap;
  }
  return mask;
}

const std::map<std::string, int>& rlimit_names() {
  static const std::map<std::string, int> m = {
      {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_CORE", RLIMIT_CORE},
      {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_DATA", RLIMIT_DATA},
      {"RLIMIT_FSIZE", RLIMIT_FSIZE},     {"RLIMIT_LOCKS", RLIMIT_LOCKS},
      {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
      {"RLIMIT_NICE", RLIMIT_NICE},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
      {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_RSS", RLIMIT_RSS},
      {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},
      {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
  };
  return m;
}

Process parse_process_json(const json& j, const std::string& where) {
  expect_object(j, where);
  Process p;
  if (auto* v = field(j, "terminal")) p.terminal = get_bool(*v, where + ".terminal");
  if (auto* v = field(j, "consoleSize")) {
    expect_object(*v, where + ".consoleSize");
    if (auto* h = field(*v, "height")) p.console_rows = static_cast<uint16_t>(get_u64(*h, where + ".consoleSize.height", 65535));
    if (auto* w = field(*v, "width")) p.console_cols = static_cast<uint16_t>(get_u64(*w, where + ".consoleSize.width", 65535));
  }
  if (auto* v = field(j, "user")) p.user = parse_user(*v, where + ".user");
  auto* args = field(j, "args");
  if (!args) fail(where + ".args", "missing: a process needs at least the program to run");
  p.args = get_strings(*args, where + ".args", kMaxArgs);
  if (p.args.empty() || p.args[0].empty()) fail(where + ".args", "empty: a process needs at least the program to run");
  if (auto* v = field(j, "env")) p.env = get_strings(*v, where + ".env", kMaxEnv);
  size_t total = 0;
  for (const auto& a : p.args) total += a.size() + 1;
  for (size_t i = 0; i < p.env.size(); i++) {
    total += p.env[i].size() + 1;
    if (p.env[i].find('=') == std::string::npos || p.env[i][0] == '=')
      fail(where + ".env[" + std::to_string(i) + "]", "\"" + p.env[i].substr(0, 64) + "\" is not NAME=value");
  }
  if (total > kMaxArgvEnvBytes)
    fail(where, "args and env total " + std::to_string(total) + " bytes, more than execve accepts here (" +
                    std::to_string(kMaxArgvEnvBytes) + ")");
  if (auto* v = field(j, "cwd")) {
    p.cwd = get_string(*v, where + ".cwd");
    check_path(where + ".cwd", p.cwd);
  }
  if (auto* v = field(j, "capabilities")) {
    expect_object(*v, where + ".capabilities");
    Capabilities c;
    if (auto* s = field(*v, "bounding")) c.bounding = parse_cap_set(*s, where + ".capabilities.bounding");
    if (auto* s = field(*v, "effective")) c.effective = parse_cap_set(*s, where + ".capabilities.effective");
    if (auto* s = field(*v, "inheritable")) c.inheritable = parse_cap_set(*s, where + ".capabilities.inheritable");
    if (auto* s = field(*v, "permitted")) c.permitted = parse_cap_set(*s, where + ".capabilities.permitted");
    if (auto* s = field(*v, "ambient")) c.ambient = parse_cap_set(*s, where + ".capabilities.ambient");
    p.capabilities = c;
  }
  if (auto* v = field(j, "rlimits")) {
    expect_array(*v, where + ".rlimits");
    if (v->size() > 64) fail(where + ".rlimits", "too many entries");
    for (size_t i = 0; i < v->size(); i++) {
      std::string w = where + ".rlimits[" + std::to_string(i) + "]";
      const auto& r = expect_object((*v)[i], w);
      auto* t = field(r, "type");
      if (!t) fail(w + ".type", "missing");
      std::string name = get_string(*t, w + ".type");
      auto it = rlimit_names().find(name);
      if (it == rlimit_names().end()) fail(w + ".type", "unknown resource limit \"" + name + "\"");
      Rlimit rl{it->second, 0, 0};
      if (auto* s = field(r, "soft")) rl.soft = get_u64(*s, w + ".soft");
      if (auto* h = field(r, "hard")) rl.hard = get_u64(*h, w + ".hard");
      if (rl.soft > rl.hard)
        fail(w, "soft limit " + std::to_string(rl.soft) + " exceeds hard limit " + std::to_string(rl.hard));
      for (const auto& prev : p.rlimits)
        if (prev.resource == rl.resource) fail(w + ".type", name + " given twice");
      p.rlimits.push_back(rl);
    }
  }
  if (auto* v = field(j, "noNewPrivileges")) p.no_new_privileges = get_bool(*v, where + ".noNewPrivileges");
  if (auto* v = field(j, "oomScoreAdj")) {
    int64_t adj = get_i64(*v, where + ".oomScoreAdj");
    if (adj < -1000 || adj > 1000) fail(where + ".oomScoreAdj", std::to_string(adj) + " is outside [-1000, 1000]");
    p.oom_score_adj = static_cast<int>(adj);
  }
  return p;
}

struct MountOption {
  bool clear;
  unsigned long flag;
};

const std::map<std::string, MountOption>& mount_options() {
  static const std::map<std::string, MountOption> m = {
      {"ro", {false, MS_RDONLY}},        {"rw", {true, MS_RDONLY}},
      {"nosuid", {false, MS_NOSUID}},    {"suid", {true, MS_NOSUID}},
      {"nodev", {false, MS_NODEV}},      {"dev", {true, MS_NODEV}},
      {"noexec", {false, MS_NOEXEC}},    {"exec", {true, MS_NOEXEC}},
      {"sync", {false, MS_SYNCHRONOUS}}, {"async", {true, MS_SYNCHRONOUS}},
      {"dirsync", {false, MS_DIRSYNC}},  {"remount", {false, MS_REMOUNT}},
      {"mand", {false, MS_MANDLOCK}},    {"nomand", {true, MS_MANDLOCK}},
      {"atime", {true, MS_NOATIME}},     {"noatime", {false, MS_NOATIME}},
      {"diratime", {true, MS_NODIRATIME}}, {"nodiratime", {false, MS_NODIRATIME}},
      {"relatime", {false, MS_RELATIME}}, {"norelatime", {true, MS_RELATIME}},
      {"strictatime", {false, MS_STRICTATIME}}, {"nostrictatime", {true, MS_STRICTATIME}},
      {"bind", {false, MS_BIND}},        {"rbind", {false, MS_BIND | MS_REC}},
  };
  return m;
}

const std::map<std::string, unsigned long>& propagation_options() {
  static const std::map<std::string, unsigned long> m = {
      {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
      {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
      {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
      {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
  };
  return m;
}

Mount parse_mount(const json& j, const std::string& where) {
  expect_object(j, where);
  Mount m;
  auto* d = field(j, "destination");
  if (!d) fail(where + ".destination", "missing");
  m.destination = get_string(*d, where + ".destination");
  check_path(where + ".destination", m.destination);
  if (m.destination == "/") fail(where + ".destination", "cannot mount over the container's root");
  if (auto* v = field(j, "type")) m.type = get_string(*v, where + ".type");
  if (auto* v = field(j, "source")) m.source = get_string(*v, where + ".source");
  if (auto* v = field(j, "options")) {
    auto opts = parse_mount_options(get_strings(*v, where + ".options", 256));
    if (!opts) fail(where + ".options", opts.error().message);
    m.flags = opts->flags;
    m.clear_flags = opts->clear_flags;
    m.propagation = std::move(opts->propagation);
    m.data = std::move(opts->data);
  }
  m.bind = (m.flags & MS_BIND) != 0 || m.type == "bind";
  if (m.bind) {
    m.flags |= MS_BIND;
    if (m.source.empty()) fail(where + ".source", "a bind mount needs a source");
    if (m.source[0] != '/') fail(where + ".source", "a bind mount source must be an absolute path");
  } else if (m.type.empty()) {
    fail(where + ".type", "missing (only bind mounts may leave it out)");
  }
  return m;
}

const std::map<std::string, int>& namespace_types() {
  static const std::map<std::string, int> m = {
      {"pid", CLONE_NEWPID},   {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
      {"ipc", CLONE_NEWIPC},   {"uts", CLONE_NEWUTS},     {"user", CLONE_NEWUSER},
      {"cgroup", CLONE_NEWCGROUP},
  };
  return m;
}

std::vector<IdMapping> parse_id_mappings(const json& j, const std::string& where) {
  expect_array(j, where);
  if (j.size() > 340) fail(where, "more than 340 entries (the kernel's limit)");
  std::vector<IdMapping> out;
  for (size_t i = 0; i < j.size(); i++) {
    std::string w = where + "[" + std::to_string(i) + "]";
    const auto& e = expect_object(j[i], w);
    IdMapping m;
    auto need = [&](const char* k) -> const json& {
      auto* v = field(e, k);
      if (!v) fail(w + "." + k, "missing");
      return *v;
    };
    m.container_id = get_u32(need("containerID"), w + ".containerID");
    m.host_id = get_u32(need("hostID"), w + ".hostID");
    m.size = get_u32(need("size"), w + ".size");
    if (m.size == 0) fail(w + ".size", "must be at least 1");
    out.push_back(m);
  }
  return out;
}

Device parse_device(const json& j, const std::string& where) {
  expect_object(j, where);
  Device d;
  auto* p = field(j, "path");
  if (!p) fail(where + ".path", "missing");
  d.path = get_string(*p, where + ".path");
  check_path(where + ".path", d.path);
  if (d.path.rfind("/dev/", 0) != 0) fail(where + ".path", "device nodes must live under /dev");
  auto* t = field(j, "type");
  if (!t) fail(where + ".type", "missing");
  std::string type = get_string(*t, where + ".type");
  if (type != "c" && type != "b" && type != "u" && type != "p") fail(where + ".type", "\"" + type + "\" is not one of c, b, u, p");
  d.type = type[0];
  if (d.type != 'p') {
    auto* ma = field(j, "major");
    auto* mi = field(j, "minor");
    if (!ma || !mi) fail(where, "character and block devices need major and minor");
    d.major = static_cast<int64_t>(get_u64(*ma, where + ".major", 4095));
    d.minor = static_cast<int64_t>(get_u64(*mi, where + ".minor", 1048575));
  }
  if (auto* v = field(j, "fileMode")) d.file_mode = static_cast<uint32_t>(get_u64(*v, where + ".fileMode", 07777));
  if (auto* v = field(j, "uid")) d.uid = get_u32(*v, where + ".uid");
  if (auto* v = field(j, "gid")) d.gid = get_u32(*v, where + ".gid");
  return d;
}

Resources parse_resources_json(const json& j, const std::string& where) {
  expect_object(j, where);
  Resources r;
  if (auto* m = field(j, "memory")) {
    expect_object(*m, where + ".memory");
    if (auto* v = field(*m, "limit")) r.memory_limit = get_i64(*v, where + ".memory.limit");
    if (auto* v = field(*m, "reservation")) r.memory_reservation = get_i64(*v, where + ".memory.reservation");
    if (auto* v = field(*m, "swap")) r.memory_swap = get_i64(*v, where + ".memory.swap");
    if (r.memory_limit && *r.memory_limit != -1 && *r.memory_limit < 0)
      fail(where + ".memory.limit", "must be positive or -1 (unlimited)");
    if (r.memory_limit && *r.memory_limit > 0 && *r.memory_limit < 4096)
      fail(where + ".memory.limit", std::to_string(*r.memory_limit) + " bytes is below one page");
    if (r.memory_swap && r.memory_limit && *r.memory_swap > 0 && *r.memory_limit > 0 && *r.memory_swap < *r.memory_limit)
      fail(where + ".memory.swap", "memory+swap limit is below the memory limit");
  }
  if (auto* c = field(j, "cpu")) {
    expect_object(*c, where + ".cpu");
    if (auto* v = field(*c, "shares")) r.cpu_shares = get_u64(*v, where + ".cpu.shares", 262144);
    if (auto* v = field(*c, "quota")) r.cpu_quota = get_i64(*v, where + ".cpu.quota");
    if (auto* v = field(*c, "period")) r.cpu_period = get_u64(*v, where + ".cpu.period", 1000000);
    if (r.cpu_period && *r.cpu_period != 0 && *r.cpu_period < 1000) fail(where + ".cpu.period", "must be at least 1000 µs");
    if (r.cpu_quota && *r.cpu_quota > 0 && *r.cpu_quota < 1000) fail(where + ".cpu.quota", "must be at least 1000 µs or -1");
    if (auto* v = field(*c, "cpus")) r.cpuset_cpus = get_string(*v, where + ".cpu.cpus");
    if (auto* v = field(*c, "mems")) r.cpuset_mems = get_string(*v, where + ".cpu.mems");
    for (auto* s : {&r.cpuset_cpus, &r.cpuset_mems})
      if (s->find_first_not_of("0123456789,-") != std::string::npos) fail(where + ".cpu", "cpus/mems must be a list like 0-3,5");
  }
  if (auto* p = field(j, "pids")) {
    expect_object(*p, where + ".pids");
    if (auto* v = field(*p, "limit")) r.pids_limit = get_i64(*v, where + ".pids.limit");
  }
  if (auto* b = field(j, "blockIO")) {
    expect_object(*b, where + ".blockIO");
    if (auto* v = field(*b, "weight")) {
      uint64_t w = get_u64(*v, where + ".blockIO.weight", 1000);
      if (w < 10) fail(where + ".blockIO.weight", "must be within [10, 1000]");
      r.blkio_weight = static_cast<uint16_t>(w);
    }
  }
  if (auto* u = field(j, "unified")) {
    expect_object(*u, where + ".unified");
    for (const auto& [k, v] : u->items()) {
      if (k.empty() || k.find('/') != std::string::npos || k.find('.') == std::string::npos || k[0] == '.')
        fail(where + ".unified", "\"" + k + "\" is not a cgroup file name");
      r.unified[k] = get_string(v, where + ".unified." + k);
    }
  }
  // devices, hugepageLimits, network: accepted; husk does not enforce them (README).
  return r;
}

uint32_t parse_seccomp_action(const json& j, const std::string& where, const json* errno_ret) {
  std::string a = get_string(j, where);
  uint32_t err = EPERM;
  if (errno_ret) err = static_cast<uint32_t>(get_u64(*errno_ret, where + " errnoRet", 4095));
  if (a == "SCMP_ACT_KILL" || a == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL;
  if (a == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  if (a == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
  if (a == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(err);
  if (a == "SCMP_ACT_TRACE") return SCMP_ACT_TRACE(err);
  if (a == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (a == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  if (a == "SCMP_ACT_NOTIFY") fail(where, "SCMP_ACT_NOTIFY needs a listener; husk does not support it");
  fail(where, "unknown seccomp action \"" + a + "\"");
}

uint32_t parse_seccomp_arch(const std::string& name, const std::string& where) {
  static const std::map<std::string, uint32_t> m = {
      {"SCMP_ARCH_X86", SCMP_ARCH_X86},         {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
      {"SCMP_ARCH_X32", SCMP_ARCH_X32},         {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
      {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64}, {"SCMP_ARCH_MIPS", SCMP_ARCH_MIPS},
      {"SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64},   {"SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32},
      {"SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL},   {"SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64},
      {"SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32}, {"SCMP_ARCH_PPC", SCMP_ARCH_PPC},
      {"SCMP_ARCH_PPC64", SCMP_ARCH_PPC64},     {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
      {"SCMP_ARCH_S390", SCMP_ARCH_S390},       {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},
      {"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
  };
  auto it = m.find(name);
  if (it == m.end()) fail(where, "unknown architecture \"" + name + "\"");
  return it->second;
}

Seccomp parse_seccomp(const json& j, const std::string& where) {
  expect_object(j, where);
  Seccomp s;
  auto* def = field(j, "defaultAction");
  if (!def) fail(where + ".defaultAction", "missing");
  s.default_action = parse_seccomp_action(*def, where + ".defaultAction", field(j, "defaultErrnoRet"));
  if (auto* v = field(j, "architectures"))
    for (const auto& a : get_strings(*v, where + ".architectures", 32))
      s.architectures.push_back(parse_seccomp_arch(a, where + ".architectures"));
  if (auto* v = field(j, "flags")) {
    for (const auto& f : get_strings(*v, where + ".flags", 8)) {
      if (f == "SECCOMP_FILTER_FLAG_LOG") s.log_flag = true;
      else if (f != "SECCOMP_FILTER_FLAG_SPEC_ALLOW" && f != "SECCOMP_FILTER_FLAG_TSYNC")
        fail(where + ".flags", "unsupported flag \"" + f + "\"");
    }
  }
  if (field(j, "listenerPath")) fail(where + ".listenerPath", "seccomp notify is not supported");
  if (auto* v = field(j, "syscalls")) {
    expect_array(*v, where + ".syscalls");
    if (v->size() > 4096) fail(where + ".syscalls", "more than 4096 rules");
    for (size_t i = 0; i < v->size(); i++) {
      std::string w = where + ".syscalls[" + std::to_string(i) + "]";
      const auto& r = expect_object((*v)[i], w);
      SeccompRule rule;
      auto* names = field(r, "names");
      if (!names) fail(w + ".names", "missing");
      rule.names = get_strings(*names, w + ".names", 1024);
      auto* act = field(r, "action");
      if (!act) fail(w + ".action", "missing");
      rule.action = parse_seccomp_action(*act, w + ".action", field(r, "errnoRet"));
      if (auto* args = field(r, "args")) {
        expect_array(*args, w + ".args");
        if (args->size() > 6) fail(w + ".args", "a system call has at most 6 arguments");
        for (size_t k = 0; k < args->size(); k++) {
          std::string aw = w + ".args[" + std::to_string(k) + "]";
          const auto& a = expect_object((*args)[k], aw);
          SeccompArg arg;
          auto* idx = field(a, "index");
          auto* val = field(a, "value");
          auto* op = field(a, "op");
          if (!idx || !val || !op) fail(aw, "needs index, value and op");
          arg.index = static_cast<unsigned>(get_u64(*idx, aw + ".index", 5));
          arg.value = get_u64(*val, aw + ".value");
          if (auto* v2 = field(a, "valueTwo")) arg.value_two = get_u64(*v2, aw + ".valueTwo");
          static const std::map<std::string, int> ops = {
              {"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
              {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
              {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ}};
          std::string o = get_string(*op, aw + ".op");
          auto it = ops.find(o);
          if (it == ops.end()) fail(aw + ".op", "unknown comparison \"" + o + "\"");
          arg.op = it->second;
          rule.args.push_back(arg);
        }
      }
      s.syscalls.push_back(std::move(rule));
    }
  }
  return s;
}

Spec parse_spec_json(const json& j) {
  expect_object(j, "config.json");
  Spec s;
  if (auto* v = field(j, "ociVersion")) {
    std::string ver = get_string(*v, "ociVersion");
    if (ver.rfind("1.", 0) != 0) fail("ociVersion", "\"" + ver + "\" is not a 1.x runtime spec");
  }
  auto* proc = field(j, "process");
  if (!proc) fail("process", "missing: nothing to run");
  s.process = parse_process_json(*proc, "process");
  auto* root = field(j, "root");
  if (!root) fail("root", "missing");
  expect_object(*root, "root");
  auto* rp = field(*root, "path");
  if (!rp) fail("root.path", "missing");
  s.root_path = get_string(*rp, "root.path");
  if (s.root_path.empty()) fail("root.path", "empty");
  if (auto* v = field(*root, "readonly")) s.root_readonly = get_bool(*v, "root.readonly");
  if (auto* v = field(j, "hostname")) s.hostname = get_string(*v, "hostname");
  if (auto* v = field(j, "domainname")) s.domainname = get_string(*v, "domainname");
  if (s.hostname.size() > 64) fail("hostname", "longer than 64 bytes");
  if (s.domainname.size() > 64) fail("domainname", "longer than 64 bytes");
  if (auto* v = field(j, "mounts")) {
    expect_array(*v, "mounts");
    if (v->size() > kMaxMounts) fail("mounts", "more than " + std::to_string(kMaxMounts) + " mounts");
    for (size_t i = 0; i < v->size(); i++) s.mounts.push_back(parse_mount((*v)[i], "mounts[" + std::to_string(i) + "]"));
  }
  if (auto* v = field(j, "annotations")) {
    expect_object(*v, "annotations");
    for (const auto& [k, val] : v->items()) s.annotations[k] = get_string(val, "annotations." + k);
  }
  auto* linux = field(j, "linux");
  if (!linux) return s;
  expect_object(*linux, "linux");
  if (auto* v = field(*linux, "namespaces")) {
    expect_array(*v, "linux.namespaces");
    for (size_t i = 0; i < v->size(); i++) {
      std::string w = "linux.namespaces[" + std::to_string(i) + "]";
      const auto& n = expect_object((*v)[i], w);
      auto* t = field(n, "type");
      if (!t) fail(w + ".type", "missing");
      std::string type = get_string(*t, w + ".type");
      auto it = namespace_types().find(type);
      if (it == namespace_types().end()) {
        if (type == "time") fail(w + ".type", "time namespaces are not supported");
        fail(w + ".type", "unknown namespace \"" + type + "\"");
      }
      if (s.has_namespace(it->second)) fail(w + ".type", "namespace \"" + type + "\" listed twice");
      Namespace ns{it->second, ""};
      if (auto* p = field(n, "path")) {
        ns.path = get_string(*p, w + ".path");
        if (ns.path.empty() || ns.path[0] != '/') fail(w + ".path", "must be an absolute path to a namespace file");
      }
      s.namespaces.push_back(ns);
    }
  }
  if (auto* v = field(*linux, "uidMappings")) s.uid_mappings = parse_id_mappings(*v, "linux.uidMappings");
  if (auto* v = field(*linux, "gidMappings")) s.gid_mappings = parse_id_mappings(*v, "linux.gidMappings");
  const Namespace* user = s.find_namespace(CLONE_NEWUSER);
  if (!s.uid_mappings.empty() || !s.gid_mappings.empty()) {
    if (!user) fail("linux.uidMappings", "id mappings need a user namespace in linux.namespaces");
    if (!user->path.empty()) fail("linux.uidMappings", "id mappings cannot be set on a joined user namespace");
  }
  if (user && user->path.empty() && (s.uid_mappings.empty() || s.gid_mappings.empty()))
    fail("linux.namespaces", "a new user namespace needs linux.uidMappings and linux.gidMappings");
  if (auto* v = field(*linux, "devices")) {
    expect_array(*v, "linux.devices");
    if (v->size() > 1024) fail("linux.devices", "more than 1024 devices");
    for (size_t i = 0; i < v->size(); i++) s.devices.push_back(parse_device((*v)[i], "linux.devices[" + std::to_string(i) + "]"));
  }
  if (auto* v = field(*linux, "resources")) s.resources = parse_resources_json(*v, "linux.resources");
  if (auto* v = field(*linux, "cgroupsPath")) {
    s.cgroups_path = get_string(*v, "linux.cgroupsPath");
    if (!s.cgroups_path.empty()) {
      // systemd's "slice:prefix:name" form needs systemd, which a guest does not run.
      if (s.cgroups_path[0] != '/') fail("linux.cgroupsPath", "\"" + s.cgroups_path + "\": only absolute cgroupfs paths are supported");
      check_path("linux.cgroupsPath", s.cgroups_path);
    }
  }
  if (auto* v = field(*linux, "maskedPaths")) {
    s.masked_paths = get_strings(*v, "linux.maskedPaths", 1024);
    for (const auto& p : s.masked_paths) check_path("linux.maskedPaths", p);
  }
  if (auto* v = field(*linux, "readonlyPaths")) {
    s.readonly_paths = get_strings(*v, "linux.readonlyPaths", 1024);
    for (const auto& p : s.readonly_paths) check_path("linux.readonlyPaths", p);
  }
  if (auto* v = field(*linux, "sysctl")) {
    expect_object(*v, "linux.sysctl");
    for (const auto& [k, val] : v->items()) {
      if (k.empty() || k.find('/') != std::string::npos || k.find("..") != std::string::npos || k[0] == '.')
        fail("linux.sysctl", "\"" + k + "\" is not a sysctl name");
      s.sysctl[k] = get_string(val, "linux.sysctl." + k);
    }
  }
  if (auto* v = field(*linux, "seccomp")) s.seccomp = parse_seccomp(*v, "linux.seccomp");
  if (auto* v = field(*linux, "rootfsPropagation")) {
    std::string p = get_string(*v, "linux.rootfsPropagation");
    auto it = propagation_options().find(p);
    if (it == propagation_options().end()) fail("linux.rootfsPropagation", "unknown propagation \"" + p + "\"");
    s.rootfs_propagation = it->second;
  }
  if (auto* v = field(*linux, "intelRdt")) (void)v;  // not applicable inside a microVM
  return s;
}

template <class T, class F>
Result<T> parse_with(std::string_view text, const char* what, F&& f) {
  if (text.size() > kMaxConfigBytes) return make_error("%s: %zu bytes, more than the limit of %zu", what, text.size(), kMaxConfigBytes);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return make_error("%s is not valid JSON: %s", what, e.what());
  }
  try {
    return f(j);
  } catch (const SpecError& e) {
    return Error{std::string(what) + ": " + e.message};
  } catch (const json::exception& e) {
    return Error{std::string(what) + ": " + e.what()};
  }
}

}  // namespace

Result<MountOptions> parse_mount_options(const std::vector<std::string>& options) {
  MountOptions m;
  for (const auto& opt : options) {
    if (auto it = mount_options().find(opt); it != mount_options().end()) {
      if (it->second.clear) {
        m.flags &= ~it->second.flag;
        m.clear_flags |= it->second.flag;
      } else {
        m.flags |= it->second.flag;
      }
    } else if (auto p = propagation_options().find(opt); p != propagation_options().end()) {
      m.propagation.push_back(p->second);
    } else if (opt.rfind("tmpcopyup", 0) == 0 || opt.rfind("idmap", 0) == 0 || opt.rfind("ridmap", 0) == 0) {
      return Error{"\"" + opt + "\" is not supported"};
    } else {
      if (opt.find(',') != std::string::npos) return Error{"\"" + opt + "\" contains a comma"};
      if (!m.data.empty()) m.data += ',';
      m.data += opt;
    }
  }
  return m;
}

bool Spec::has_namespace(int type) const { return find_namespace(type) != nullptr; }

const Namespace* Spec::find_namespace(int type) const {
  for (const auto& n : namespaces)
    if (n.type == type) return &n;
  return nullptr;
}

Status check_container_path(const std::string& what, const std::string& path) {
  if (path.empty() || path[0] != '/') return Error{what + ": \"" + path + "\" is not an absolute path"};
  if (path.find('\0') != std::string::npos) return Error{what + ": contains a NUL byte"};
  if (path.size() > 4096) return Error{what + ": longer than PATH_MAX"};
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string_view name(path.data() + i, j - i);
    if (name == "..") return Error{what + ": \"" + path + "\" climbs out with \"..\""};
    i = j + 1;
  }
  return {};
}

Result<Spec> parse_spec(std::string_view text) {
  return parse_with<Spec>(text, "config.json", [](const json& j) { return parse_spec_json(j); });
}

Result<Process> parse_process(std::string_view text) {
  return parse_with<Process>(text, "process", [](const json& j) { return parse_process_json(j, "process"); });
}

Result<Resources> parse_resources(std::string_view text) {
  return parse_with<Resources>(text, "resources", [](const json& j) { return parse_resources_json(j, "resources"); });
}

}  // namespace husk::agent::oci
