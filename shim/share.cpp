#include "shim/share.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
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

Status Share::add(const std::string& id, const std::vector<RootfsMount>& mounts, bool readonly) {
  if (!mounts_) return make_error("the share is gone");
  auto top = make_dir(mounts_.get(), id, 0700);
  if (!top) return top.error();
  auto root = make_dir(top->get(), "rootfs", 0755);
  if (!root) {
    (void)remove_tree(mounts_.get(), id);
    return root.error();
  }
  if (auto s = mount_rootfs(mounts, root->get(), readonly); !s) {
    remove(id);
    return s;
  }
  return {};
}

void Share::remove(const std::string& id) {
  if (!mounts_ || id.empty() || id.find('/') != std::string::npos) return;
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
    if (mounts) unmount_all(mounts.get(), id + "/rootfs");
    if (mounts) (void)remove_tree(mounts.get(), id);
  } else if (mounts) {
    // Every container still here (a teardown with containers left, or a crash).
    if (DIR* d = fdopendir(dup(mounts.get()))) {
      std::vector<std::string> ids;
      while (dirent* e = readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ids.push_back(e->d_name);
      closedir(d);
      for (const auto& other : ids) {
        unmount_all(mounts.get(), other + "/rootfs");
        (void)remove_tree(mounts.get(), other);
      }
    }
  }
  // The layout goes once no container root is left in it.
  bool empty = true;
  if (mounts) {
    if (DIR* d = fdopendir(dup(mounts.get()))) {
      while (dirent* e = readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
      closedir(d);
    }
  }
  if (!empty) return;
  mounts.reset();
  unmount_all(top.get(), kShared);
  unmount_all(top.get(), kMounts);
  (void)unlinkat(top.get(), kShared, AT_REMOVEDIR);
  (void)unlinkat(top.get(), kMounts, AT_REMOVEDIR);
}

}  // namespace husk::shim
