#include "guest-agent/runtime/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "common/unique_fd.h"

namespace husk::agent {
namespace {

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

uint64_t read_u64(const std::string& path, uint64_t if_max = 0) {
  std::string s;
  if (!read_file(path, &s)) return 0;
  if (s.rfind("max", 0) == 0) return if_max;
  return std::strtoull(s.c_str(), nullptr, 10);
}

std::map<std::string, uint64_t> read_keyed(const std::string& path) {
  std::map<std::string, uint64_t> m;
  std::ifstream f(path);
  std::string k;
  uint64_t v;
  while (f >> k >> v) m[k] = v;
  return m;
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

Result<std::string> Cgroup::mount_point() {
  static const Result<std::string> found = []() -> Result<std::string> {
    std::ifstream f("/proc/self/mountinfo");
    std::string line;
    while (std::getline(f, line)) {
      // "36 25 0:31 / /sys/fs/cgroup rw,... - cgroup2 cgroup2 rw"
      auto dash = line.find(" - ");
      if (dash == std::string::npos) continue;
      std::istringstream tail(line.substr(dash + 3));
      std::string fstype;
      tail >> fstype;
      if (fstype != "cgroup2") continue;
      std::istringstream head(line.substr(0, dash));
      std::string id, parent, dev, root, mnt;
      head >> id >> parent >> dev >> root >> mnt;
      if (root == "/") return mnt;
    }
    return make_error("no cgroup2 filesystem is mounted (containers need cgroup v2)");
  }();
  return found;
}

Result<Cgroup> Cgroup::create(const std::string& relative, bool missing_ok) {
  auto root = mount_point();
  if (!root) return root.error();
  std::string controllers;
  read_file(*root + "/cgroup.controllers", &controllers);
  std::string path = *root;
  size_t i = 1;
  while (i <= relative.size()) {
    size_t j = relative.find('/', i);
    if (j == std::string::npos) j = relative.size();
    if (j > i) {
      // Delegate every available controller one level down; each on its own so one refusal
      // (say, cpuset in a busy parent) does not cost the others.
      std::istringstream cs(controllers);
      std::string c;
      while (cs >> c) {
        UniqueFd fd(open((path + "/cgroup.subtree_control").c_str(), O_WRONLY | O_CLOEXEC));
        std::string v = "+" + c;
        if (fd && ::write(fd.get(), v.data(), v.size()) < 0)
          LOG_DEBUG("cgroup: enabling %s in %s: %s", c.c_str(), path.c_str(), strerror(errno));
      }
      path += '/';
      path.append(relative, i, j - i);
      if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
        return make_error("cgroup: mkdir %s: %s", path.c_str(), strerror(errno));
      controllers.clear();
      read_file(path + "/cgroup.controllers", &controllers);
    }
    i = j + 1;
  }
  return Cgroup(path, missing_ok);
}

Status Cgroup::write(const std::string& file, const std::string& value) const {
  std::string p = path_ + "/" + file;
  UniqueFd fd(open(p.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      std::string controller = file.substr(0, file.find('.'));
      if (missing_ok_ && file.rfind("cgroup.", 0) != 0) {
        LOG_WARN("cgroup: no \"%s\" controller here: %s not applied", controller.c_str(), file.c_str());
        return {};
      }
      return make_error("cgroup: %s is missing: the cgroup v2 \"%s\" controller is not available here",
                        p.c_str(), controller.c_str());
    }
    return make_error("cgroup: open %s: %s", p.c_str(), strerror(errno));
  }
  if (::write(fd.get(), value.data(), value.size()) < 0)
    return make_error("cgroup: writing \"%s\" to %s: %s", value.c_str(), p.c_str(), strerror(errno));
  return {};
}

Status Cgroup::apply(const oci::Resources& r) {
  auto limit = [](int64_t v) { return v < 0 ? std::string("max") : std::to_string(v); };
  if (r.memory_limit) {
    if (auto s = write("memory.max", limit(*r.memory_limit)); !s) return s;
  }
  if (r.memory_reservation) {
    if (auto s = write("memory.low", limit(*r.memory_reservation)); !s) return s;
  }
  if (r.memory_swap) {
    // The spec's swap is memory+swap (cgroup v1); v2 limits swap alone.
    std::string v = "max";
    if (*r.memory_swap >= 0) {
      int64_t mem = r.memory_limit.value_or(-1);
      if (mem < 0) return make_error("resources.memory.swap needs memory.limit under cgroup v2");
      v = std::to_string(*r.memory_swap - mem);
    }
    if (exists(path_ + "/memory.swap.max")) {
      if (auto s = write("memory.swap.max", v); !s) return s;
    } else if (v != "0" && v != "max") {
      return make_error("resources.memory.swap: this kernel has no swap accounting (memory.swap.max)");
    }
  }
  if (r.cpu_shares && *r.cpu_shares != 0) {
    // runc's conversion from v1 shares [2, 262144] to v2 weight [1, 10000].
    uint64_t shares = std::max<uint64_t>(*r.cpu_shares, 2);
    uint64_t weight = 1 + ((shares - 2) * 9999) / 262142;
    if (auto s = write("cpu.weight", std::to_string(weight)); !s) return s;
  }
  if (r.cpu_quota || r.cpu_period) {
    std::string quota = (r.cpu_quota && *r.cpu_quota > 0) ? std::to_string(*r.cpu_quota) : "max";
    uint64_t period = r.cpu_period.value_or(0) ? *r.cpu_period : 100000;
    if (auto s = write("cpu.max", quota + " " + std::to_string(period)); !s) return s;
  }
  if (!r.cpuset_cpus.empty()) {
    if (auto s = write("cpuset.cpus", r.cpuset_cpus); !s) return s;
  }
  if (!r.cpuset_mems.empty()) {
    if (auto s = write("cpuset.mems", r.cpuset_mems); !s) return s;
  }
  if (r.pids_limit) {
    if (auto s = write("pids.max", *r.pids_limit > 0 ? std::to_string(*r.pids_limit) : "max"); !s) return s;
  }
  if (r.blkio_weight) {
    uint64_t w = 1 + (uint64_t(*r.blkio_weight) - 10) * 9999 / 990;
    if (auto s = write("io.weight", "default " + std::to_string(w)); !s) return s;
  }
  for (const auto& [file, value] : r.unified) {
    if (auto s = write(file, value); !s) return s;
  }
  return {};
}

Status Cgroup::add_process(pid_t pid) { return write("cgroup.procs", std::to_string(pid)); }

Status Cgroup::freeze(bool frozen) {
  if (auto s = write("cgroup.freeze", frozen ? "1" : "0"); !s) return s;
  // The write returns before every task has stopped; callers (and `ctr pause`) expect the
  // container frozen when Pause returns.
  for (int i = 0; i < 500; i++) {
    if (this->frozen() == frozen) return {};
    sleep_ms(2);
  }
  return make_error("cgroup: %s did not become %s within a second", path_.c_str(), frozen ? "frozen" : "thawed");
}

bool Cgroup::frozen() const { return read_keyed(path_ + "/cgroup.events")["frozen"] == 1; }

std::vector<pid_t> Cgroup::processes() const {
  std::vector<pid_t> out;
  std::ifstream f(path_ + "/cgroup.procs");
  pid_t p;
  while (f >> p) out.push_back(p);
  return out;
}

int Cgroup::signal_all(int sig) const {
  int n = 0;
  for (pid_t p : processes())
    if (kill(p, sig) == 0) n++;
  return n;
}

Status Cgroup::kill_all(int timeout_ms) const {
  for (int waited = 0; waited <= timeout_ms; waited += 5) {
    // A frozen task cannot die until thawed.
    if (frozen()) (void)write("cgroup.freeze", "0");
    if (exists(path_ + "/cgroup.kill")) {
      (void)write("cgroup.kill", "1");
    } else {
      signal_all(SIGKILL);
    }
    if (read_keyed(path_ + "/cgroup.events")["populated"] == 0) return {};
    sleep_ms(5);
  }
  return make_error("cgroup: processes in %s survived SIGKILL for %d ms", path_.c_str(), timeout_ms);
}

void Cgroup::fill_stats(v1::ContainerStats* out) const {
  auto* pids = out->mutable_pids();
  pids->set_current(read_u64(path_ + "/pids.current"));
  pids->set_limit(read_u64(path_ + "/pids.max"));

  auto cpu = read_keyed(path_ + "/cpu.stat");
  auto* c = out->mutable_cpu();
  c->set_usage_usec(cpu["usage_usec"]);
  c->set_user_usec(cpu["user_usec"]);
  c->set_system_usec(cpu["system_usec"]);
  c->set_nr_periods(cpu["nr_periods"]);
  c->set_nr_throttled(cpu["nr_throttled"]);
  c->set_throttled_usec(cpu["throttled_usec"]);

  auto ms = read_keyed(path_ + "/memory.stat");
  auto* m = out->mutable_memory();
  m->set_anon(ms["anon"]);
  m->set_file(ms["file"]);
  m->set_kernel_stack(ms["kernel_stack"]);
  m->set_slab(ms["slab"]);
  m->set_sock(ms["sock"]);
  m->set_shmem(ms["shmem"]);
  m->set_file_mapped(ms["file_mapped"]);
  m->set_file_dirty(ms["file_dirty"]);
  m->set_file_writeback(ms["file_writeback"]);
  m->set_anon_thp(ms["anon_thp"]);
  m->set_inactive_anon(ms["inactive_anon"]);
  m->set_active_anon(ms["active_anon"]);
  m->set_inactive_file(ms["inactive_file"]);
  m->set_active_file(ms["active_file"]);
  m->set_unevictable(ms["unevictable"]);
  m->set_slab_reclaimable(ms["slab_reclaimable"]);
  m->set_slab_unreclaimable(ms["slab_unreclaimable"]);
  m->set_pgfault(ms["pgfault"]);
  m->set_pgmajfault(ms["pgmajfault"]);
  m->set_usage(read_u64(path_ + "/memory.current"));
  m->set_usage_limit(read_u64(path_ + "/memory.max"));
  m->set_swap_usage(read_u64(path_ + "/memory.swap.current"));
  m->set_swap_limit(read_u64(path_ + "/memory.swap.max"));

  auto ev = read_keyed(path_ + "/memory.events");
  auto* e = out->mutable_memory_events();
  e->set_low(ev["low"]);
  e->set_high(ev["high"]);
  e->set_max(ev["max"]);
  e->set_oom(ev["oom"]);
  e->set_oom_kill(ev["oom_kill"]);

  // "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0"
  std::ifstream io(path_ + "/io.stat");
  std::string line;
  while (std::getline(io, line)) {
    std::istringstream ls(line);
    std::string dev, kv;
    ls >> dev;
    unsigned major = 0, minor = 0;
    if (std::sscanf(dev.c_str(), "%u:%u", &major, &minor) != 2) continue;
    auto* entry = out->add_io();
    entry->set_major(major);
    entry->set_minor(minor);
    while (ls >> kv) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) continue;
      uint64_t v = std::strtoull(kv.c_str() + eq + 1, nullptr, 10);
      std::string k = kv.substr(0, eq);
      if (k == "rbytes") entry->set_rbytes(v);
      else if (k == "wbytes") entry->set_wbytes(v);
      else if (k == "rios") entry->set_rios(v);
      else if (k == "wios") entry->set_wios(v);
    }
  }
}

uint64_t Cgroup::oom_kills() const { return read_keyed(memory_events_path())["oom_kill"]; }

Status Cgroup::destroy(int timeout_ms) const {
  for (int waited = 0;; waited += 5) {
    if (rmdir(path_.c_str()) == 0 || errno == ENOENT) return {};
    if (errno != EBUSY || waited >= timeout_ms) return make_error("cgroup: rmdir %s: %s", path_.c_str(), strerror(errno));
    sleep_ms(5);
  }
}

}  // namespace husk::agent
