// husk-jailer: starts one host helper of a sandbox (husk-vmm, virtiofsd) confined, as
// Firecracker's jailer starts firecracker. In order, before the helper's first instruction:
// join the sandbox's cgroup; new mount, pid, ipc, uts (and network) namespaces; a private
// read-only tmpfs root holding only the helper's files and device nodes, entered with
// pivot_root and the old root detached; rlimits; every descriptor but stdio and the ones handed
// over closed; an empty environment; no_new_privs; then its own uid/gid with no supplementary
// groups and every capability set emptied (bounding and ambient included); exec.
// The jailer stays as the helper's parent (the helper is pid 1 of its namespace and dies with
// the jailer): it forwards SIGTERM/SIGINT/SIGHUP and ends the way the helper ended, the same
// exit status or the same signal, so the shim sees the helper's fate.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace husk::jailer {

struct Bind {
  std::string source;  // host path (a file), opened by the jailer as root
  std::string target;  // absolute path inside the jail; mounted read-only, nosuid, nodev
};

struct Rlimits {
  uint64_t nofile = 1024;
  uint64_t fsize = 64ull << 20;
  uint64_t nproc = 64;
  uint64_t core = 0;
};

struct Spec {
  std::string exec;                // the helper binary (statically linked when jailed in a root)
  std::vector<std::string> argv;   // its argv; argv[0] is what it sees as its name
  std::vector<std::string> env;    // its whole environment (NAME=VALUE)
  // Unprivileged identity. Unset: the helper stays root with its capabilities (virtiofsd,
  // which sandboxes itself and must act as any guest file owner).
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // The jail: a directory on which the jailer mounts, in its own mount namespace, a tmpfs that
  // becomes the helper's root. Empty: the helper keeps the host's root (virtiofsd pivots into
  // its share itself with -o sandbox=namespace).
  std::string root;
  std::vector<Bind> binds;
  std::vector<std::string> devices;  // host device nodes to recreate in the jail: /dev/kvm, /dev/net/tun, /dev/urandom
  std::string cgroup;                // a cgroup v2 directory to join (made by the shim); empty: none
  std::string netns;                 // "" a new, empty network namespace; a path: join it; "host": keep
  bool new_pid = true;
  unsigned keep_fds = 0;  // descriptors 3 .. 3+keep_fds-1 pass to the helper; all others are closed
  Rlimits limits;
};

// Validates the spec; no side effects.
Status check(const Spec& s);

// Runs the helper jailed and returns the status the jailer must exit with (or re-raises the
// signal that killed the helper and does not return). Errors before the helper started.
Result<int> run(const Spec& s);

}  // namespace husk::jailer
