#include "shim/share.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace husk::shim {
namespace {

constexpr const char* kMounts = "mounts";
constexpr const char* kShared = "shared";

Status mount_ok(int r, const char* what, const std::string& path) {
  if (r != 0) return make_error("%s %s: %s", what, path.c_str(), strerror(errno));
  return {};
}

}  // namespace

Result<Share> Share::create(const std::string& dir) {
  Share s(dir);
  UniqueFd top(open(dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!top) return make_error("sandbox directory %s: %s", dir.c_str(), strerror(errno));
  auto mounts = make_dir(top.get(), kMounts, 0700);
  if (!mounts) return mounts.error();
  auto shared = make_dir(top.get(), kShared, 0700);
  if (!shared) return shared.error();
  std::string m = dir + "/" + kMounts, sh = dir + "/" + kShared;
  // mounts/ becomes a mount of its own in a peer group of its own (private first: its parent,
  // /run, may be shared with the host's other namespaces), so shared/ can be its slave.
  HUSK_TRY(mount_ok(mount(m.c_str(), m.c_str(), nullptr, MS_BIND, nullptr), "bind", m));
  s.set_up_ = true;
  HUSK_TRY(mount_ok(mount(nullptr, m.c_str(), nullptr, MS_PRIVATE, nullptr), "make-private", m));
  HUSK_TRY(mount_ok(mount(nullptr, m.c_str(), nullptr, MS_SHARED, nullptr), "make-shared", m));
  HUSK_TRY(mount_ok(mount(m.c_str(), sh.c_str(), nullptr, MS_BIND, nullptr), "bind", sh));
  HUSK_TRY(mount_ok(mount(nullptr, sh.c_str(), nullptr, MS_SLAVE, nullptr), "make-slave", sh));
  HUSK_TRY(mount_ok(mount(nullptr, sh.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr),
                    "read-only remount", sh));
  // Opened now, through the bind: roots attached below this fd land on the shared mount and
  // propagate to the export (an fd opened before the bind would reach the directory beneath).
  auto fd = open_beneath(top.get(), kMounts, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!fd) return fd.error();
  s.mounts_ = std::move(fd.value());
  return s;
}

Share::~Share() { destroy(); }

Status Share::add(const std::string& id, const std::vector<RootfsMount>& mounts, bool readonly,
                  const std::vector<MountPoint>& mountpoints) {
  if (!mounts_) return make_error("the share is gone");
  auto top = make_dir(mounts_.get(), id, 0700);
  if (!top) return top.error();
  auto root = make_dir(top->get(), "rootfs", 0755);
  if (!root) {
    (void)remove_tree(mounts_.get(), id);
    return root.error();
  }
  if (auto s = mount_rootfs(mounts, root->get(), readonly, mountpoints); !s) {
    remove(id);
    return s;
  }
  return {};
}

namespace {

// The names in directory `dirfd` (opened for reading), "." and ".." left out.
std::vector<std::string> entries(int dirfd) {
  std::vector<std::string> names;
  if (DIR* d = fdopendir(dup(dirfd))) {
    while (dirent* e = readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
    closedir(d);
  }
  return names;
}

// Detaches every volume of container `id` (files and directories under <id>/volumes).
void unmount_volumes(int mounts, const std::string& id) {
  auto vols = open_beneath(mounts, id + "/volumes", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!vols) return;
  for (const auto& n : entries(vols->get())) unmount_all(vols->get(), n, false);
}

}  // namespace

Result<std::string> Share::add_volume(const std::string& id, size_t n, const std::string& source, bool readonly) {
  if (!mounts_) return make_error("the share is gone");
  auto top = open_beneath(mounts_.get(), id, O_PATH | O_DIRECTORY | O_NOFOLLOW);
  if (!top) return top.error();
  auto vols = make_dir(top->get(), "volumes", 0755, true);
  if (!vols) return vols.error();
  struct stat st;
  if (::stat(source.c_str(), &st) != 0)
    return make_error(ErrorCode::kFailedPrecondition, "bind mount source %s: %s", source.c_str(), strerror(errno));
  std::string name = std::to_string(n);
  UniqueFd target;
  if (S_ISDIR(st.st_mode)) {
    auto d = make_dir(vols->get(), name, 0755);
    if (!d) return d.error();
    target = std::move(d.value());
  } else {
    UniqueFd f(openat(vols->get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!f) return make_error("creating the mount point for %s: %s", source.c_str(), strerror(errno));
    auto p = open_beneath(vols->get(), name, O_PATH | O_NOFOLLOW);
    if (!p) return p.error();
    target = std::move(p.value());
  }
  if (auto s = mount_rootfs({{"bind", source, {"rbind"}}}, target.get(), readonly); !s) return s.error();
  return id + "/volumes/" + name;
}

void Share::remove(const std::string& id) {
  if (!mounts_ || id.empty() || id.find('/') != std::string::npos) return;
  unmount_volumes(mounts_.get(), id);
  unmount_all(mounts_.get(), id + "/rootfs");
  if (auto s = remove_tree(mounts_.get(), id); !s) LOG_WARN("removing container %s from the share: %s", id.c_str(), s.error().message.c_str());
}

void Share::destroy() {
  if (!set_up_) return;
  set_up_ = false;
  mounts_.reset();
  cleanup(dir_, "");
}

void Share::cleanup(const std::string& dir, const std::string& id) {
  std::string m = dir + "/" + kMounts;
  UniqueFd top(open(dir.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!top) return;
  UniqueFd mounts(open(m.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!id.empty()) {
    if (mounts) unmount_volumes(mounts.get(), id);
    if (mounts) unmount_all(mounts.get(), id + "/rootfs");
    if (mounts) (void)remove_tree(mounts.get(), id);
  } else if (mounts) {
    // Every container still here (a teardown with containers left, or a crash).
    for (const auto& other : entries(mounts.get())) {
      unmount_volumes(mounts.get(), other);
      unmount_all(mounts.get(), other + "/rootfs");
      (void)remove_tree(mounts.get(), other);
    }
  }
  // The layout goes once no container root is left in it.
  if (mounts && !entries(mounts.get()).empty()) return;
  mounts.reset();
  unmount_all(top.get(), kShared);
  unmount_all(top.get(), kMounts);
  (void)unlinkat(top.get(), kShared, AT_REMOVEDIR);
  (void)unlinkat(top.get(), kMounts, AT_REMOVEDIR);
}

}  // namespace husk::shim
