#include "shim/jail.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/log.h"
#include "common/unique_fd.h"
#include "guest-agent/runtime/cgroup.h"
#include "shim/sandbox.h"

namespace husk::shim {
namespace {

constexpr const char* kRecord = "husk-jail";

std::string parent_of(const std::string& dir) { return dir.substr(0, dir.rfind('/')); }

// The cgroup path relative to the cgroup2 mount: the pod's (absolute cgroupfs path) or ours.
std::string relative_cgroup(const Config& c, const std::string& dir) {
  if (!c.cgroup_path.empty()) return c.cgroup_path;
  return "/husk/" + dir.substr(dir.rfind('/') + 1);
}

void remove_cgroup(const std::string& relative) {
  auto cg = agent::Cgroup::create(relative);
  if (!cg) return;
  (void)cg->kill_all(2000);
  if (auto s = cg->destroy(2000); !s) LOG_WARN("jail: removing cgroup %s: %s", cg->path().c_str(), s.error().message.c_str());
}

}  // namespace

Result<Jail> Jail::create(const Config& c, const std::string& dir) {
  Jail j(c, dir);
  // A uid of our own: the first free one from a start derived from the sandbox, so concurrent
  // shims rarely contend; O_EXCL makes taking one atomic.
  std::string locks = parent_of(dir) + "/jail-uids";
  if (::mkdir(locks.c_str(), 0700) != 0 && errno != EEXIST) return make_error("mkdir %s: %s", locks.c_str(), strerror(errno));
  uint64_t h = std::strtoull(short_hash(dir).c_str(), nullptr, 16);
  for (unsigned i = 0; i < c.jail_uid_count && j.uid_lock_.empty(); ++i) {
    uid_t uid = c.jail_uid_min + static_cast<uid_t>((h + i) % c.jail_uid_count);
    std::string lock = locks + "/" + std::to_string(uid);
    UniqueFd f(::open(lock.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!f) continue;
    (void)!::write(f.get(), dir.data(), dir.size());
    j.uid_ = uid;
    j.uid_lock_ = lock;
  }
  if (j.uid_lock_.empty())
    return make_error(ErrorCode::kResourceExhausted, "every jail uid in [%u, %u) is taken (shim config jail_uid_count)",
                      c.jail_uid_min, c.jail_uid_min + c.jail_uid_count);
  j.released_ = false;
  j.cgroup_rel_ = relative_cgroup(c, dir);
  std::ofstream(dir + "/" + kRecord) << "uid " << j.uid_ << "\nlock " << j.uid_lock_ << "\ncgroup " << j.cgroup_rel_ << "\n";
  auto cg = agent::Cgroup::create(j.cgroup_rel_);
  if (!cg) return cg.error().wrap("jail cgroup: ");
  j.cgroup_ = cg->path();
  agent::oci::Resources r;
  r.memory_limit = (int64_t{c.memory_mib} + c.jail_memory_overhead_mib) << 20;
  r.cpu_quota = int64_t{c.vcpus + 1} * 100000;
  r.cpu_period = 100000;
  r.pids_limit = c.vcpus + 128;  // husk-vmm's threads, virtiofsd's, two jailers
  if (auto s = cg->apply(r); !s)
    return s.error().wrap("jail cgroup " + j.cgroup_ + " (cgroup v2 with the memory, cpu and pids controllers is required; "
                          "`husk check` says what is missing): ");
  return j;
}

Jail::Jail(Jail&& o) noexcept
    : c_(std::move(o.c_)),
      dir_(std::move(o.dir_)),
      uid_(o.uid_),
      uid_lock_(std::move(o.uid_lock_)),
      cgroup_rel_(std::move(o.cgroup_rel_)),
      cgroup_(std::move(o.cgroup_)),
      released_(o.released_) {
  o.released_ = true;
}

Jail::~Jail() { release(); }

std::vector<std::string> Jail::vmm_command(const std::vector<std::string>& vmm_args, unsigned fds) const {
  std::string id = std::to_string(uid_);
  std::vector<std::string> cmd = {c_.jailer, "--uid", id, "--gid", id, "--root", dir_ + "/jail", "--cgroup", cgroup_,
                                  "--netns", "new", "--fds", std::to_string(fds), "--dev", "/dev/kvm", "--dev",
                                  "/dev/urandom", "--bind", c_.kernel + ":/vmlinux", "--bind", c_.initramfs + ":/initrd",
                                  // Threads: main, one per vCPU, a few spare; descriptors: the vsock
                                  // bound (1023 streams) and the devices'; file size: guest RAM (a
                                  // template's memory file) or the console file.
                                  "--rlimit", "nproc=" + std::to_string(c_.vcpus + 4), "--rlimit", "nofile=2048",
                                  "--rlimit",
                                  "fsize=" + std::to_string(std::max<uint64_t>(uint64_t{c_.memory_mib} << 20, c_.console_limit) + (1 << 20)),
                                  "--rlimit", "core=0", "--"};
  cmd.push_back(c_.vmm);
  cmd.insert(cmd.end(), vmm_args.begin(), vmm_args.end());
  return cmd;
}

std::vector<std::string> Jail::virtiofsd_command(const std::vector<std::string>& args, unsigned fds) const {
  std::vector<std::string> cmd = {c_.jailer, "--cgroup", cgroup_, "--netns", "new", "--fds", std::to_string(fds),
                                  "--rlimit", "nofile=4096", "--rlimit", "fsize=unlimited", "--rlimit", "nproc=256",
                                  "--rlimit", "core=0", "--", c_.virtiofsd};
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

void Jail::release() {
  if (released_) return;
  released_ = true;
  remove_cgroup(cgroup_rel_);
  ::unlink(uid_lock_.c_str());
  ::unlink((dir_ + "/" + kRecord).c_str());
}

void Jail::cleanup(const std::string& dir) {
  std::ifstream f(dir + "/" + kRecord);
  std::string key, value, lock, cgroup;
  while (f >> key >> value) {
    if (key == "lock") lock = value;
    if (key == "cgroup") cgroup = value;
  }
  // Only what create() wrote: the lock under this state directory, a cgroup path without "..".
  if (!lock.empty() && lock.rfind(parent_of(dir) + "/jail-uids/", 0) == 0 && lock.find("..") == std::string::npos)
    ::unlink(lock.c_str());
  if (!cgroup.empty() && cgroup[0] == '/' && cgroup.find("..") == std::string::npos) remove_cgroup(cgroup);
  ::unlink((dir + "/" + kRecord).c_str());
}

}  // namespace husk::shim
