// The virtio-fs share of a VM sandbox, laid out so that the guest can write nothing the shim
// acts on (Kata's fix for CVE-2020-28914 and the class of CVE-2020-2026):
//   <dir>/mounts            host-only (0700): the shim creates <id>/rootfs here and attaches
//                           each container's root on it, through directory fds it holds;
//   <dir>/shared            what virtiofsd exports: a read-only bind of mounts/, a slave of it,
//                           so container roots attached under mounts/ appear here (with their
//                           own flags: writable, or read-only when the root is), while the
//                           directories around them cannot be renamed, replaced by symlinks or
//                           written by the guest.
// Teardown detaches the roots, then shared/ and mounts/, and removes only what the shim made.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "shim/rootfs.h"

namespace husk::shim {

class Share {
 public:
  // Sets the layout up under `dir` (which the shim created, 0700).
  static Result<Share> create(const std::string& dir);
  Share(Share&&) = default;
  Share& operator=(Share&&) = default;
  ~Share();

  // Where virtiofsd exports from.
  std::string export_dir() const { return dir_ + "/shared"; }
  // Creates mounts/<id>/rootfs and attaches the container's root there.
  Status add(const std::string& id, const std::vector<RootfsMount>& mounts, bool readonly,
             const std::vector<MountPoint>& mountpoints = {});
  // The root's path inside the export (the agent mounts the share and uses this subpath).
  static std::string guest_subpath(const std::string& id) { return id + "/rootfs"; }
  // Bind-mounts the host file or directory `source` that container `id`'s config.json mounts
  // (CRI's /etc/hosts, resolv.conf, hostname; a volume) at mounts/<id>/volumes/<n>, read-only
  // when asked, and returns its path inside the export. `source` is containerd's (trusted as
  // containerd's, like the root's mounts); add() must have run for `id`.
  Result<std::string> add_volume(const std::string& id, size_t n, const std::string& source, bool readonly);
  // Detaches container `id`'s root and removes its directories.
  void remove(const std::string& id);
  // Everything: every root, shared/, mounts/. Also run by the destructor.
  void destroy();

  // After a shim died: what `destroy` would do for container `id`, and the rest of the layout
  // once no other container's root is left under it.
  static void cleanup(const std::string& dir, const std::string& id);

 private:
  explicit Share(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
  UniqueFd mounts_;  // O_PATH fd of <dir>/mounts
  bool set_up_ = false;
};

}  // namespace husk::shim
