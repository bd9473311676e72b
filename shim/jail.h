// How the shim confines a VM sandbox's host helpers. Each sandbox gets a uid of its own from
// the configured range (a lock file per uid under <state_dir>/jail-uids), a cgroup v2 directory
// (the pod's, from linux.cgroupsPath, else husk/<hash>) limited to the VM's memory plus an
// overhead, its vCPUs plus one CPU, and a pids bound; husk-vmm and virtiofsd start through
// husk-jailer (jailer/jail.h) inside it. What the jail holds is recorded in <dir>/husk-jail so
// a `delete` after a shim crash releases it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "shim/config.h"

namespace husk::shim {

class Jail {
 public:
  static Result<Jail> create(const Config& c, const std::string& dir);
  Jail(Jail&& o) noexcept;
  Jail& operator=(Jail&&) = delete;
  ~Jail();

  // The command that runs husk-vmm (`vmm_args` after its path) jailed, handed `fds` inherited
  // descriptors (3, 4, ...).
  std::vector<std::string> vmm_command(const std::vector<std::string>& vmm_args, unsigned fds) const;
  // The same for virtiofsd: root (it must act as any file owner in the share; it drops its own
  // capabilities and pivots into the share), but in the cgroup and new ipc/uts/pid/net
  // namespaces, with an empty environment, bounded descriptors and no fds of ours.
  std::vector<std::string> virtiofsd_command(const std::vector<std::string>& args, unsigned fds) const;

  uid_t uid() const { return uid_; }
  const std::string& cgroup() const { return cgroup_; }
  // After the helpers are gone: kills what is left in the cgroup, removes it, frees the uid.
  void release();
  // After a shim crash: what <dir>/husk-jail names.
  static void cleanup(const std::string& dir);

 private:
  Jail(const Config& c, std::string dir) : c_(c), dir_(std::move(dir)) {}
  Config c_;
  std::string dir_;
  uid_t uid_ = 0;
  std::string uid_lock_;  // <state_dir>/jail-uids/<uid>
  std::string cgroup_rel_;  // below the cgroup2 mount, as recorded for cleanup()
  std::string cgroup_;    // absolute cgroup directory
  bool released_ = true;
};

}  // namespace husk::shim
