// One container's cgroup v2 directory: resources, freezing, signalling every member, stats.
// The agent finds the cgroup2 mount itself (a guest mounts it at /sys/fs/cgroup; a host may
// have it elsewhere) and uses whichever controllers the hierarchy offers; asking for a limit
// whose controller is missing fails with a message saying so.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "guest-agent/oci/spec.h"
#include "proto/agent.pb.h"

namespace husk::agent {

class Cgroup {
 public:
  // The cgroup2 mount point, from /proc/self/mountinfo.
  static Result<std::string> mount_point();
  // Creates (or adopts) <mount>/<relative> and enables controllers down to it.
  // missing_ok: a limit whose controller this hierarchy lacks is skipped with a warning instead
  // of failing (host mode on a cgroup v1/hybrid machine, where the shim's tests run).
  static Result<Cgroup> create(const std::string& relative, bool missing_ok = false);

  const std::string& path() const { return path_; }
  Status apply(const oci::Resources& r);
  Status add_process(pid_t pid);
  Status freeze(bool frozen);
  bool frozen() const;
  std::vector<pid_t> processes() const;
  // Sends `sig` to every member; returns how many were signalled.
  int signal_all(int sig) const;
  // Kills every member and waits (up to `timeout_ms`) until the cgroup is empty.
  Status kill_all(int timeout_ms) const;
  void fill_stats(v1::ContainerStats* out) const;
  uint64_t oom_kills() const;
  std::string memory_events_path() const { return path_ + "/memory.events"; }
  // Removes the directory, waiting (up to `timeout_ms`) for exiting members to leave.
  Status destroy(int timeout_ms) const;

 private:
  Cgroup(std::string path, bool missing_ok) : path_(std::move(path)), missing_ok_(missing_ok) {}
  Status write(const std::string& file, const std::string& value) const;
  std::string path_;
  bool missing_ok_ = false;
};

}  // namespace husk::agent
