#include "cli/check.h"

#include <elf.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "shim/config.h"

namespace husk::check {
namespace {

using V = Verdict;

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string octal(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", m & 07777);
  return buf;
}

std::string sha256(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  while (f.read(buf.data(), static_cast<std::streamsize>(buf.size())) || f.gcount() > 0)
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(f.gcount()));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

// A 64-bit ELF with a PT_INTERP program header needs a dynamic loader (and libraries).
bool elf_is_dynamic(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  Elf64_Ehdr eh{};
  if (!f.read(reinterpret_cast<char*>(&eh), sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return false;
  for (unsigned i = 0; i < eh.e_phnum && i < 256; ++i) {
    Elf64_Phdr ph{};
    f.seekg(static_cast<std::streamoff>(eh.e_phoff + uint64_t{i} * eh.e_phentsize));
    if (!f.read(reinterpret_cast<char*>(&ph), sizeof ph)) return false;
    if (ph.p_type == PT_INTERP) return true;
  }
  return false;
}

std::vector<Finding> kvm(const Host& h) {
  std::vector<Finding> out;
  std::string cpuinfo("\n");
  cpuinfo += read_all(h.root + "/proc/cpuinfo");
  std::string flags;
  if (auto p = cpuinfo.find("\nflags"); p != std::string::npos) flags = cpuinfo.substr(p, cpuinfo.find('\n', p + 1) - p) + " ";
  bool vmx = flags.find(" vmx ") != std::string::npos, svm = flags.find(" svm ") != std::string::npos;
  bool nested = flags.find(" hypervisor ") != std::string::npos;
  struct stat st;
  bool dev = ::stat((h.root + "/dev/kvm").c_str(), &st) == 0 && S_ISCHR(st.st_mode);
  bool pvm = exists(h.root + "/sys/module/kvm_pvm");
  const std::string name = "hardware KVM";
  if (!dev)
    out.push_back({name, V::kFail, "no /dev/kvm", "enable VT-x/AMD-V in the firmware and load kvm_intel or kvm_amd"});
  else if (pvm)
    out.push_back({name, V::kFail, "/dev/kvm is PVM (kvm_pvm): it cannot boot a stock Linux guest",
                   "run husk on a host with hardware virtualization (or nested vmx/svm)"});
  else if (!vmx && !svm)
    out.push_back({name, V::kFail, "/dev/kvm is there but the CPU shows neither vmx nor svm",
                   "enable VT-x/AMD-V in the firmware"});
  else if (nested)
    out.push_back({name, V::kWarn, std::string(vmx ? "vmx" : "svm") + ", nested: this host is itself a virtual machine",
                   "works, but every exit costs more; bare metal boots faster"});
  else
    out.push_back({name, V::kPass, std::string(vmx ? "vmx" : "svm") + " on bare metal", ""});
  if (dev) {
    std::string who = octal(st.st_mode) + " uid " + std::to_string(st.st_uid) + " gid " + std::to_string(st.st_gid);
    if (st.st_mode & 0006)
      out.push_back({"/dev/kvm permissions", V::kWarn, who + ": any local user can create VMs",
                     "chmod 0660 /dev/kvm (group kvm), as udev's default rule does"});
    else
      out.push_back({"/dev/kvm permissions", V::kPass, who, ""});
  }
  if (::stat((h.root + "/dev/vhost-vsock").c_str(), &st) != 0)
    out.push_back({"/dev/vhost-vsock", V::kPass, "absent: not needed (husk's vsock is hybrid, over unix sockets)", ""});
  else if (st.st_mode & 0006)
    out.push_back({"/dev/vhost-vsock", V::kWarn, octal(st.st_mode) + ": any local user can open guest sockets",
                   "chmod 0600 /dev/vhost-vsock (husk does not use it)"});
  else
    out.push_back({"/dev/vhost-vsock", V::kPass, octal(st.st_mode) + " (husk does not use it)", ""});
  return out;
}

Finding cgroup(const Host& h) {
  const std::string name = "cgroup v2 for the jail";
  std::istringstream mi(read_all(h.root + "/proc/self/mountinfo"));
  std::string line, mount;
  while (std::getline(mi, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream head(line.substr(0, dash));
    std::string id, parent, dev, root, mnt;
    head >> id >> parent >> dev >> root >> mnt;
    if (root == "/") mount = mnt;
  }
  if (mount.empty())
    return {name, V::kFail, "no cgroup2 filesystem is mounted", "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2)"};
  std::string controllers(" ");
  controllers += read_all(h.root + mount + "/cgroup.controllers");
  controllers += " ";
  std::replace(controllers.begin(), controllers.end(), '\n', ' ');
  std::string missing;
  for (const char* c : {"memory", "cpu", "pids"})
    if (controllers.find(std::string(" ") + c + " ") == std::string::npos) missing += std::string(missing.empty() ? "" : ", ") + c;
  if (!missing.empty())
    return {name, V::kFail, std::string("at ").append(mount) + " without the " + missing + " controller(s) (a hybrid v1/v2 host?)",
            "boot with systemd.unified_cgroup_hierarchy=1 so every controller is on the v2 hierarchy"};
  return {name, V::kPass, std::string("at ").append(mount).append(" with memory, cpu and pids"), ""};
}

std::vector<Finding> kernel_features(const Host& h) {
  std::vector<Finding> out;
  std::string actions(" ");
  actions += read_all(h.root + "/proc/sys/kernel/seccomp/actions_avail");
  actions += " ";
  std::replace(actions.begin(), actions.end(), '\n', ' ');
  if (actions.find(" kill_process ") != std::string::npos)
    out.push_back({"seccomp", V::kPass, "filters with kill_process available", ""});
  else
    out.push_back({"seccomp", V::kFail, "seccomp filters (with kill_process) are not available",
                   "a kernel with CONFIG_SECCOMP_FILTER (4.14 or later)"});
  std::string userns = read_all(h.root + "/proc/sys/user/max_user_namespaces");
  if (!userns.empty() && std::atol(userns.c_str()) > 0)
    out.push_back({"user namespaces", V::kPass, "available (husk does not need them, and forbids them to its helpers)", ""});
  else
    out.push_back({"user namespaces", V::kWarn, "disabled (user.max_user_namespaces = 0)",
                   "husk runs without them; rootless containerd setups need them"});
  return out;
}

std::vector<Finding> files(const Host& h, const shim::Config& c) {
  std::vector<Finding> out;
  struct Want {
    const char* what;
    std::string path;
    bool jail_reads;  // the jailed (unprivileged) husk-vmm reads it
    bool static_elf;
  };
  std::vector<Want> wants = {{"guest kernel", c.kernel, true, false},
                             {"agent initramfs", c.initramfs, true, false},
                             {"husk-vmm", c.vmm, false, true},
                             {"husk-jailer", c.jailer, false, false},
                             {"virtiofsd", c.virtiofsd, false, false}};
  for (const auto& w : wants) {
    std::string name = std::string(w.what);
    struct stat st;
    std::string p = h.root + w.path;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      out.push_back({name, V::kFail, w.path + " is missing",
                     std::string(w.what) == "virtiofsd" ? "apt-get install qemu-system-common" : "scripts/install.sh"});
      continue;
    }
    if (w.jail_reads && !(st.st_mode & 0004)) {
      out.push_back({name, V::kFail, w.path + " (" + octal(st.st_mode) + ") is not readable by the jail's uids",
                     std::string("chmod o+r ").append(w.path)});
      continue;
    }
    if (w.static_elf && elf_is_dynamic(p)) {
      out.push_back({name, V::kFail, w.path + " is linked dynamically: its jail holds no libraries",
                     "build with -DHUSK_STATIC=ON (the default)"});
      continue;
    }
    out.push_back({name, V::kPass, w.path + " sha256 " + sha256(p), ""});
  }
  return out;
}

Finding containerd(const Host& h) {
  const std::string name = "containerd runtime handler";
  std::string path = "/etc/containerd/config.toml";
  std::string toml = read_all(h.root + path);
  if (toml.find("io.containerd.husk.v2") != std::string::npos)
    return {name, V::kPass, path + " names io.containerd.husk.v2", ""};
  return {name, V::kWarn, path + (toml.empty() ? " is missing or empty" : " does not name io.containerd.husk.v2"),
          "add [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.husk] runtime_type = \"io.containerd.husk.v2\" "
          "(ctr works without it)"};
}

// The first `n` colon-separated fields of a passwd-style line (missing ones empty).
std::vector<std::string> fields(const std::string& line, size_t n) {
  std::vector<std::string> out(n);
  std::istringstream f(line);
  for (auto& field : out) std::getline(f, field, ':');
  return out;
}

Finding uid_range(const Host& h, const shim::Config& c) {
  const std::string name = "jail uid range";
  uint64_t lo = c.jail_uid_min, hi = uint64_t{c.jail_uid_min} + c.jail_uid_count;
  std::string range("[");
  range += std::to_string(lo) + ", " + std::to_string(hi) + ")";
  std::istringstream pw(read_all(h.root + "/etc/passwd"));
  std::string line;
  while (std::getline(pw, line)) {
    auto f = fields(line, 3);  // name, password, uid
    const std::string &user = f[0], &uid = f[2];
    uint64_t u = std::strtoull(uid.c_str(), nullptr, 10);
    if (!uid.empty() && u >= lo && u < hi)
      return {name, V::kFail, range + " holds uid " + uid + " (" + user + ")",
              "choose jail_uid_min/jail_uid_count in the shim config outside every account's uid"};
  }
  for (const char* file : {"/etc/subuid", "/etc/subgid"}) {
    std::istringstream sub(read_all(h.root + file));
    while (std::getline(sub, line)) {
      auto f = fields(line, 3);  // name, first id, count
      const std::string &user = f[0], &start = f[1], &count = f[2];
      uint64_t s = std::strtoull(start.c_str(), nullptr, 10), n = std::strtoull(count.c_str(), nullptr, 10);
      if (n && s < hi && lo < s + n)
        return {name, V::kFail, range + " overlaps " + user + "'s range in " + file,
                "choose jail_uid_min/jail_uid_count in the shim config outside every subordinate range"};
    }
  }
  return {name, V::kPass, range + " is used by no account or subordinate range", ""};
}

std::vector<Finding> options(const shim::Config& c) {
  std::vector<Finding> out;
  if (c.mode != "vm")
    out.push_back({"isolation", V::kWarn, "mode \"host\": containers run on the host kernel (runc-like)", "set \"mode\": \"vm\""});
  if (c.jail)
    out.push_back({"jail", V::kPass, "on: helpers unprivileged, namespaced, cgrouped", ""});
  else
    out.push_back({"jail", V::kWarn, "off: husk-vmm and virtiofsd run as root", "remove \"jail\": false from the shim config"});
  if (c.vmm_seccomp == "kill")
    out.push_back({"husk-vmm seccomp", V::kPass, "allowlists per thread, kill on violation", ""});
  else
    out.push_back({"husk-vmm seccomp", V::kWarn, std::string("\"").append(c.vmm_seccomp).append("\": violations are not stopped"),
                   "set \"vmm_seccomp\": \"kill\" (the default)"});
  out.push_back({"container roots", V::kPass, "shared read-only to the guest (the virtio-fs export is a read-only bind)", ""});
  if (c.console == "off")
    out.push_back({"guest console", V::kPass, "off", ""});
  else
    out.push_back({"guest console", V::kPass, "bounded to " + std::to_string(c.console_limit) + " bytes", ""});
  return out;
}

}  // namespace

std::vector<Finding> run(const Host& h) {
  std::vector<Finding> out = kvm(h);
  out.push_back(cgroup(h));
  for (auto& f : kernel_features(h)) out.push_back(f);
  std::string cfg_path = h.shim_config.empty() ? "/etc/husk/shim.json" : h.shim_config;
  auto cfg = exists(h.root + cfg_path) ? shim::load_config(h.root + cfg_path) : Result<shim::Config>(shim::Config{});
  if (!cfg) {
    out.push_back({"shim config", V::kFail, cfg.error().message, "fix the file (unknown fields are errors)"});
    return out;
  }
  if (exists(h.root + cfg_path))
    out.push_back({"shim config", V::kPass, cfg_path + " sha256 " + sha256(h.root + cfg_path), ""});
  else
    out.push_back({"shim config", V::kWarn, cfg_path + " is missing: the shim uses its defaults", "scripts/install.sh writes one"});
  for (auto& f : files(h, *cfg)) out.push_back(f);
  out.push_back(containerd(h));
  out.push_back(uid_range(h, *cfg));
  for (auto& f : options(*cfg)) out.push_back(f);
  return out;
}

std::string to_text(const std::vector<Finding>& findings) {
  std::string s;
  for (const auto& f : findings) {
    s += f.verdict == V::kPass ? "PASS  " : f.verdict == V::kWarn ? "WARN  " : "FAIL  ";
    s += f.name + ": " + f.detail + "\n";
    if (!f.fix.empty()) s += "      fix: " + f.fix + "\n";
  }
  return s;
}

nlohmann::json to_json(const std::vector<Finding>& findings) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& f : findings)
    a.push_back({{"check", f.name},
                 {"verdict", f.verdict == V::kPass ? "pass" : f.verdict == V::kWarn ? "warn" : "fail"},
                 {"detail", f.detail},
                 {"fix", f.fix}});
  return a;
}

int exit_status(const std::vector<Finding>& findings) {
  return std::any_of(findings.begin(), findings.end(), [](const Finding& f) { return f.verdict == V::kFail; }) ? 1 : 0;
}

}  // namespace husk::check
