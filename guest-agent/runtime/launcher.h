// Starts one process of a container the way runc does, without re-executing anything: the
// agent forks an intermediate child that joins and creates the namespaces, which forks the
// process itself (pid 1 of a new pid namespace) and exits. The process prepares its root,
// identity and limits, reports READY, waits for START (container init) and executes.
// Everything the children need is decided and allocated before fork; after fork they only
// make system calls, and report failures over a SOCK_SEQPACKET pair with a readable message.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "guest-agent/oci/seccomp.h"
#include "guest-agent/oci/spec.h"

namespace husk::agent {

class Cgroup;

struct LaunchPlan {
  const oci::Spec* spec = nullptr;  // mounts, devices, hostname, sysctl, paths (setup_rootfs)
  const oci::Process* process = nullptr;
  std::string rootfs;               // host path of the container's root (setup_rootfs)
  bool setup_rootfs = false;        // container init: build the root and pivot into it
  bool wait_for_start = false;      // stop after READY until start() (create/start split)
  std::vector<std::pair<int, std::string>> join;  // (CLONE_NEW*, /proc/.../ns/... path)
  std::string enter_root;           // exec: chroot into /proc/<init>/root after joining
  int new_namespaces = 0;           // CLONE_NEW* to create
  std::string uid_map, gid_map;     // for a new user namespace
  const oci::SeccompProgram* seccomp = nullptr;
  Cgroup* cgroup = nullptr;
  std::string cgroup_path;          // its directory, for a cgroup mount that must be a bind
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  int pty_slave = -1;               // set: the process gets it as controlling terminal and stdio
  std::string pty_path;             // its /dev/pts/N
};

struct Launched {
  pid_t pid = -1;       // in the agent's pid namespace
  UniqueFd sync;        // to the process until it executes
};

// Returns once the process is READY (or failed; then it has exited or will exit at once).
Result<Launched> launch(const LaunchPlan& plan);
// Lets a process waiting for START execute; returns once execve succeeded or failed.
Status start(Launched& l);

}  // namespace husk::agent
