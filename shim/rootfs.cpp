#include "shim/rootfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "guest-agent/oci/spec.h"

namespace husk::shim {
namespace {

bool has_dotdot(const std::string& p) {
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    if (p.compare(start, end - start, "..") == 0 && end - start == 2) return true;
    start = end + 1;
  }
  return false;
}

uint64_t mount_attrs(unsigned long flags) {
  uint64_t a = 0;
  if (flags & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
  if (flags & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
  if (flags & MS_NODEV) a |= MOUNT_ATTR_NODEV;
  if (flags & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
  return a;
}

// A detached mount for `m`: a clone of its source tree for binds, a new superblock otherwise.
Result<UniqueFd> build_mount(const RootfsMount& m, bool readonly) {
  auto opts = agent::oci::parse_mount_options(m.options);
  if (!opts) return make_error("rootfs mount options: %s", opts.error().message.c_str());
  unsigned long flags = opts->flags | (readonly ? MS_RDONLY : 0);
  UniqueFd mnt;
  if (m.type == "bind" || (flags & MS_BIND)) {
    mnt.reset(open_tree(AT_FDCWD, m.source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | ((flags & MS_REC) ? AT_RECURSIVE : 0)));
    if (!mnt) return make_error("cloning %s for the container root: %s", m.source.c_str(), strerror(errno));
  } else {
    UniqueFd fs(fsopen(m.type.c_str(), FSOPEN_CLOEXEC));
    if (!fs) return make_error("filesystem type %s: %s", m.type.c_str(), strerror(errno));
    auto set = [&](const std::string& key, const std::string& value) {
      return fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0) == 0;
    };
    if (!set("source", m.source)) return make_error("%s source %s: %s", m.type.c_str(), m.source.c_str(), strerror(errno));
    // Filesystem data ("lowerdir=a:b,upperdir=c,workdir=d"): key=value pairs, or flags.
    size_t start = 0;
    const std::string& data = opts->data;
    while (start < data.size()) {
      size_t end = data.find(',', start);
      if (end == std::string::npos) end = data.size();
      std::string kv = data.substr(start, end - start);
      start = end + 1;
      if (kv.empty()) continue;
      size_t eq = kv.find('=');
      bool ok = eq == std::string::npos ? fsconfig(fs.get(), FSCONFIG_SET_FLAG, kv.c_str(), nullptr, 0) == 0
                                        : set(kv.substr(0, eq), kv.substr(eq + 1));
      if (!ok) return make_error("%s option %s: %s", m.type.c_str(), kv.c_str(), strerror(errno));
    }
    if (fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
      return make_error("mounting %s %s: %s", m.type.c_str(), m.source.c_str(), strerror(errno));
    mnt.reset(fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
    if (!mnt) return make_error("mounting %s %s: %s", m.type.c_str(), m.source.c_str(), strerror(errno));
  }
  mount_attr attr{};
  attr.attr_set = mount_attrs(flags);
  for (unsigned long p : opts->propagation) attr.propagation = p & ~static_cast<unsigned long>(MS_REC);
  if ((attr.attr_set || attr.propagation) &&
      mount_setattr(mnt.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
    return make_error("setting %s on the container root: %s", readonly ? "read-only" : "mount flags", strerror(errno));
  return mnt;
}

}  // namespace

Result<UniqueFd> open_beneath(int dirfd, const std::string& rel, int flags) {
  if (rel.empty() || rel[0] == '/' || has_dotdot(rel)) return make_error("path \"%s\" is not a plain relative path", rel.c_str());
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how)));
  if (!fd) return make_error("opening %s: %s", rel.c_str(), strerror(errno));
  return fd;
}

Result<UniqueFd> make_dir(int dirfd, const std::string& name, mode_t mode, bool may_exist) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return make_error("\"%s\" is not a directory name", name.c_str());
  if (mkdirat(dirfd, name.c_str(), mode) != 0 && !(may_exist && errno == EEXIST))
    return make_error("mkdir %s: %s", name.c_str(), strerror(errno));
  auto fd = open_beneath(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!fd) return fd.error();
  // mkdirat applies the umask; the mode asked for is the mode wanted (0700: private). Through
  // the fd just opened: the directory itself, whatever happens to its name meanwhile.
  if (chmod(("/proc/self/fd/" + std::to_string(fd->get())).c_str(), mode) != 0)
    return make_error("chmod %s: %s", name.c_str(), strerror(errno));
  return fd;
}

namespace {

// Creates `mp` beneath the root `root` (a detached mount) unless something is there already:
// every component resolved without symlinks, so an image's symlink is left alone (the agent
// decides about it in the guest), never followed out of the root.
void create_mountpoint(int root, const MountPoint& mp) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < mp.path.size();) {
    size_t j = mp.path.find('/', i);
    if (j == std::string::npos) j = mp.path.size();
    if (j > i) parts.push_back(mp.path.substr(i, j - i));
    i = j + 1;
  }
  if (parts.empty()) return;
  UniqueFd dir(fcntl(root, F_DUPFD_CLOEXEC, 3));
  for (size_t k = 0; k < parts.size(); ++k) {
    const std::string& name = parts[k];
    if (name == "." || name == "..") return;
    bool last = k + 1 == parts.size();
    if (!last || mp.directory) {
      (void)mkdirat(dir.get(), name.c_str(), 0755);
      auto next = open_beneath(dir.get(), name, O_PATH | O_DIRECTORY | O_NOFOLLOW);
      if (!next) return;  // a symlink or a file where a directory should be: not ours to change
      dir = std::move(next.value());
    } else {
      UniqueFd f(openat(dir.get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644));
    }
  }
}

}  // namespace

Status mount_rootfs(const std::vector<RootfsMount>& mounts, int target, bool readonly, const std::vector<MountPoint>& mountpoints) {
  for (size_t i = 0; i < mounts.size(); ++i) {
    const auto& m = mounts[i];
    bool top = i + 1 == mounts.size();
    // The top mount is what the container sees: with mount points to make, it is built writable,
    // they are made on it while it is still detached (nobody else sees it), then it turns read-only.
    bool later_ro = top && readonly && !mountpoints.empty();
    auto mnt = build_mount(m, readonly && !later_ro);
    if (!mnt) return mnt.error();
    if (top)
      for (const auto& mp : mountpoints) create_mountpoint(mnt->get(), mp);
    if (later_ro) {
      mount_attr attr{};
      attr.attr_set = MOUNT_ATTR_RDONLY;
      if (mount_setattr(mnt->get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
        return make_error("making the container root read-only: %s", strerror(errno));
    }
    if (move_mount(mnt->get(), "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
      return make_error("attaching the container root (%s %s): %s", m.type.c_str(), m.source.c_str(), strerror(errno));
  }
  return {};
}

void unmount_all(int dirfd, const std::string& rel, bool directory) {
  for (int i = 0; i < 64; i++) {  // stacked mounts, one at a time; bounded in case of a loop
    auto fd = open_beneath(dirfd, rel, O_PATH | O_NOFOLLOW | (directory ? O_DIRECTORY : 0));
    if (!fd) return;
    // The magic link names exactly the mount the fd was opened on (its root when `rel` is a
    // mount point); EINVAL once only the directory underneath is left.
    if (umount2(("/proc/self/fd/" + std::to_string(fd->get())).c_str(), MNT_DETACH) != 0) return;
  }
}

void unmount_all(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash + 1 == path.size()) return;
  UniqueFd parent(open(slash == 0 ? "/" : path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (parent) unmount_all(parent.get(), path.substr(slash + 1));
}

Status remove_tree(int dirfd, const std::string& name) {
  struct stat parent, st;
  if (fstat(dirfd, &parent) != 0) return make_error("stat: %s", strerror(errno));
  if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return make_error("stat %s: %s", name.c_str(), strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dirfd, name.c_str(), 0) != 0) return make_error("unlink %s: %s", name.c_str(), strerror(errno));
    return {};
  }
  if (st.st_dev != parent.st_dev) return make_error("%s is still a mount point", name.c_str());
  auto dir = open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!dir) return dir.error();
  DIR* d = fdopendir(dup(dir->get()));
  if (!d) return make_error("reading %s: %s", name.c_str(), strerror(errno));
  Status result;
  while (dirent* e = readdir(d)) {
    std::string child = e->d_name;
    if (child == "." || child == "..") continue;
    if (auto s = remove_tree(dir->get(), child); !s && result) result = s.error().wrap(name + "/");
  }
  closedir(d);
  if (!result) return result;
  if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) return make_error("rmdir %s: %s", name.c_str(), strerror(errno));
  return {};
}

Result<std::string> checked_root_path(const std::string& bundle, const std::string& root_path) {
  if (root_path.empty()) return make_error(ErrorCode::kInvalidArgument, "config.json: root.path is empty");
  if (has_dotdot(root_path))
    return make_error(ErrorCode::kInvalidArgument, "config.json: root.path \"%s\" contains \"..\"", root_path.c_str());
  return root_path[0] == '/' ? root_path : bundle + "/" + root_path;
}

}  // namespace husk::shim
