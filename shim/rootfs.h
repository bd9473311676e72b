// Mounting container roots on the host without following anything a guest could have written:
// every path below a directory the shim created is resolved from a directory fd with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS); new mounts are built
// detached (open_tree / fsmount), made read-only there when asked, and attached to an O_PATH fd
// of the target with move_mount, so the flags hold wherever the mount propagates; unmounts use
// UMOUNT_NOFOLLOW; removal is unlinkat on directory fds, never crossing into another mount.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk::shim {

// openat2 beneath `dirfd`: `rel` is relative, without "..", and no component may be a symlink.
Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, int flags);
// Creates directory `name` (one component) in `dirfd` with `mode`, then opens it (O_PATH).
// An existing entry is an error unless `may_exist` (and then it must be a real directory).
Result<UniqueFd> make_dir(int dirfd, const std::string& name, mode_t mode, bool may_exist = false);

// One of containerd's rootfs mounts (types.Mount), or a bind of a root directory.
struct RootfsMount {
  std::string type;    // "bind", "overlay", ...
  std::string source;  // from containerd (a snapshot directory), trusted as containerd's
  std::vector<std::string> options;
};

// A mount point config.json needs (relative to the root). In a root the shim makes read-only it
// is created, when missing, on the detached root before that becomes read-only, as runc creates
// them before its read-only remount (CRI's pause image has no /etc/resolv.conf to mount over).
struct MountPoint {
  std::string path;
  bool directory = true;
};

// Mounts `mounts` in order on the directory `target` (an O_PATH fd), each built detached and
// read-only when its options say "ro" or `readonly` is set; `mountpoints` go into the top one.
Status mount_rootfs(const std::vector<RootfsMount>& mounts, int target, bool readonly,
                    const std::vector<MountPoint>& mountpoints = {});

// Detaches every mount stacked on `rel` beneath `dirfd`, resolved without symlinks each time and
// unmounted through the resolved fd itself, so no path component can be swapped meanwhile.
void unmount_all(int dirfd, const std::string& rel, bool directory = true);
// The same for a whole path (opened as a directory first, following nothing in its last part).
void unmount_all(const std::string& path);

// Removes directory `name` in `dirfd` and what is below it, without following symlinks or
// entering other mounts (a mount still there stops the removal of its parents).
Status remove_tree(int dirfd, const std::string& name);

// A container root named in config.json (root.path): relative to the bundle, or absolute (as
// `ctr run --rootfs DIR` gives it); never with "..". Returns the absolute path.
Result<std::string> checked_root_path(const std::string& bundle, const std::string& root_path);

}  // namespace husk::shim
