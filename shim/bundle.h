// An OCI bundle as the shim reads it, once: config.json's text (handed to the agent as is) and
// the few facts the shim itself acts on. `start` (which shim serves the container) and Create
// (how to attach its root, how big its VM is) both read it through here.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "shim/rootfs.h"

namespace husk::shim {

struct Bundle {
  std::string path;
  std::string config_json;  // for the agent
  nlohmann::json spec;      // parsed: VM sizing reads annotations and limits
  std::string sandbox_id;   // io.kubernetes.cri.sandbox-id, "" when the container is its own sandbox
  std::string root_path;    // root.path, made absolute (relative to the bundle), checked for ".."
  bool root_readonly = false;
  // linux.namespaces' network entry with a path (CRI's pod namespace, `ctr run --with-ns`), or "".
  std::string netns_path;
  // A CRI pod sandbox with no network namespace entry at all: the CRI plugin's spec for a pod
  // with hostNetwork: true. A microVM cannot join the host's network namespace.
  bool host_network = false;
};

Result<Bundle> load_bundle(const std::string& path);

// The mount points config.json's mounts need in the root: files for binds of host files,
// directories for the rest.
std::vector<MountPoint> mountpoints_of(const Bundle& b);

// config.json for an agent in a VM. A network namespace path names the host's namespace, which
// the guest does not have; the shim extends that namespace into the VM instead (shim/network.h),
// so the container joins the guest namespace the agent configured: the entry is dropped. Bind
// mounts of host files and directories (CRI's /etc/hosts, resolv.conf, hostname, volumes) are
// handed to `share`, which makes them visible in the guest and returns the guest path to mount
// from; CRI's pod /dev/shm (a host tmpfs) becomes a tmpfs of the guest's.
Result<std::string> config_for_guest(const Bundle& b, const std::function<Result<std::string>(const std::string& source, bool ro)>& share);

}  // namespace husk::shim
