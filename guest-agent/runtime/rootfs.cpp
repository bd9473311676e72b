// The container's root, built in its new mount namespace. Destinations are resolved inside
// the root with openat2(RESOLVE_IN_ROOT), so a symlink in an image cannot point a mount at the
// guest's own files, and mounts go onto /proc/self/fd/N of what was resolved.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "guest-agent/runtime/child.h"

namespace husk::agent::child {

int openat2_in_root(int root, const std::string& path, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  size_t start = path.find_first_not_of('/');
  std::string rel = start == std::string::npos ? std::string(".") : path.substr(start);
  return static_cast<int>(syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how));
}

namespace {

// Opens `path` inside `root` as O_PATH, creating missing directories (and, when !dir, the
// last component as an empty file).
int ensure_in_root(int root, const std::string& path, bool dir) {
  size_t pos = 0;
  for (;;) {
    size_t next = path.find('/', pos + 1);
    bool last = next == std::string::npos;
    std::string prefix = path.substr(0, last ? std::string::npos : next);
    if (prefix.size() > 1 || last) {
      int fd = openat2_in_root(root, prefix, O_PATH);
      if (fd < 0 && errno == ENOENT) {
        size_t slash = prefix.rfind('/');
        std::string parent = slash == 0 ? "/" : prefix.substr(0, slash);
        std::string name = prefix.substr(slash + 1);
        int pfd = openat2_in_root(root, parent, O_PATH | O_DIRECTORY);
        if (pfd < 0) die("resolving %s in the container root: %s", parent.c_str(), strerror(errno));
        if (!last || dir) {
          if (mkdirat(pfd, name.c_str(), 0755) != 0 && errno != EEXIST) die("mkdir %s: %s", prefix.c_str(), strerror(errno));
        } else {
          int f = openat(pfd, name.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
          if (f < 0 && errno != EEXIST) die("creating %s: %s", prefix.c_str(), strerror(errno));
          if (f >= 0) close(f);
        }
        close(pfd);
        fd = openat2_in_root(root, prefix, O_PATH);
      }
      if (fd < 0) die("resolving %s in the container root: %s", prefix.c_str(), strerror(errno));
      if (last) return fd;
      close(fd);
    }
    pos = next;
  }
}

std::string fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// Flags the kernel locks on a mount from a less privileged namespace; a remount must keep them.
unsigned long locked_flags(const char* path) {
  struct statvfs sv;
  if (statvfs(path, &sv) != 0) return 0;
  unsigned long f = 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_RDONLY) f |= MS_RDONLY;
  return f;
}

void remount_bind(const char* target, unsigned long flags, unsigned long clear) {
  unsigned long keep = locked_flags(target) & ~clear;
  unsigned long f = MS_BIND | MS_REMOUNT | ((flags | keep) & ~(MS_BIND | MS_REC | MS_REMOUNT));
  if (mount(nullptr, target, nullptr, f, nullptr) != 0) die("remounting %s: %s", target, strerror(errno));
}

void mount_entry(int root, const oci::Mount& m, const char* plan_cgroup_path) {
  bool dir = true;
  if (m.bind) {
    struct stat st;
    if (stat(m.source.c_str(), &st) != 0) die("bind mount source %s: %s", m.source.c_str(), strerror(errno));
    dir = S_ISDIR(st.st_mode);
  }
  int fd = ensure_in_root(root, m.destination, dir);
  std::string target = fd_path(fd);
  if (m.bind) {
    if (mount(m.source.c_str(), target.c_str(), nullptr, MS_BIND | (m.flags & MS_REC), nullptr) != 0)
      die("bind mounting %s on %s: %s", m.source.c_str(), m.destination.c_str(), strerror(errno));
  } else {
    std::string type = m.type;
    std::string source = m.source.empty() ? type : m.source;
    const char* data = m.data.empty() ? nullptr : m.data.c_str();
    if (type == "cgroup" || type == "cgroup2") {
      // A cgroup v2 guest: "cgroup" in a spec means the unified hierarchy.
      type = "cgroup2";
      source = "cgroup2";
      data = nullptr;
    }
    int rc = mount(source.c_str(), target.c_str(), type.c_str(), m.flags & ~MS_REMOUNT, data);
    if (rc != 0 && errno == EPERM && type == "cgroup2" && plan_cgroup_path && *plan_cgroup_path) {
      // A user namespace without a cgroup namespace may not mount cgroup2: show the
      // container its own cgroup instead (runc binds it too).
      rc = mount(plan_cgroup_path, target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
    }
    if (rc != 0 && errno == EPERM && type == "sysfs") {
      // A user namespace without its own network namespace may not mount sysfs (runc too
      // falls back to the host's, read-only).
      rc = mount("/sys", target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
      if (rc == 0) {
        close(fd);
        fd = ensure_in_root(root, m.destination, true);
        remount_bind(fd_path(fd).c_str(), m.flags | MS_RDONLY, 0);
      }
    }
    if (rc != 0) die("mounting %s (%s) on %s: %s", source.c_str(), type.c_str(), m.destination.c_str(), strerror(errno));
  }
  close(fd);
  // Re-resolve: the O_PATH fd above still names the directory underneath the new mount.
  fd = ensure_in_root(root, m.destination, dir);
  target = fd_path(fd);
  if (m.bind && (m.flags & ~(MS_BIND | MS_REC)) != 0) remount_bind(target.c_str(), m.flags, m.clear_flags);
  for (unsigned long p : m.propagation)
    if (mount(nullptr, target.c_str(), nullptr, p, nullptr) != 0)
      die("setting propagation of %s: %s", m.destination.c_str(), strerror(errno));
  close(fd);
}

struct DefaultDevice {
  const char* path;
  unsigned major, minor;
};
constexpr DefaultDevice kDefaultDevices[] = {
    {"/dev/null", 1, 3}, {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

void make_device(int root, const std::string& path, char type, unsigned major, unsigned minor, mode_t mode,
                 uid_t uid, gid_t gid, bool in_userns) {
  size_t slash = path.rfind('/');
  int dfd = ensure_in_root(root, path.substr(0, slash), true);
  std::string name = path.substr(slash + 1);
  std::string dir = fd_path(dfd);
  unlinkat(dfd, name.c_str(), 0);
  mode_t kind = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
  if (!in_userns && mknodat(dfd, name.c_str(), kind | (mode & 07777), makedev(major, minor)) == 0) {
    int f = openat(dfd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (f >= 0) {
      fchmodat(dfd, name.c_str(), mode & 07777, 0);
      fchownat(dfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW);
      close(f);
    }
  } else {
    // No mknod in a user namespace: bind the agent's node instead, as runc does.
    int f = openat(dfd, name.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (f < 0) die("creating %s: %s", path.c_str(), strerror(errno));
    close(f);
    std::string target = dir + "/" + name;
    if (mount(path.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
      die("binding device %s: %s", path.c_str(), strerror(errno));
  }
  close(dfd);
}

bool dev_is_bound(const oci::Spec& s) {
  for (const auto& m : s.mounts)
    if (m.destination == "/dev" && m.bind) return true;
  return false;
}

void symlink_in(int root, const char* target, const char* linkpath) {
  std::string lp = linkpath;
  size_t slash = lp.rfind('/');
  int dfd = ensure_in_root(root, lp.substr(0, slash), true);
  std::string name = lp.substr(slash + 1);
  unlinkat(dfd, name.c_str(), 0);
  if (symlinkat(target, dfd, name.c_str()) != 0 && errno != EEXIST) die("symlink %s: %s", linkpath, strerror(errno));
  close(dfd);
}

}  // namespace

void prepare_rootfs(const LaunchPlan& plan) {
  const oci::Spec& s = *plan.spec;
  const char* rootfs = plan.rootfs.c_str();
  bool userns = (plan.new_namespaces & CLONE_NEWUSER) != 0;
  if (!(plan.new_namespaces & CLONE_NEWNS)) {
    // Without a mount namespace there is nothing to pivot; chroot like `runc --no-pivot`.
    if (chroot(rootfs) != 0 || chdir("/") != 0) die("chroot %s: %s", rootfs, strerror(errno));
    return;
  }
  // Keep our mounts from propagating back into the agent's namespace.
  if (mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr) != 0) die("making / a slave: %s", strerror(errno));
  if (mount(rootfs, rootfs, nullptr, MS_BIND | MS_REC, nullptr) != 0) die("bind mounting the root %s: %s", rootfs, strerror(errno));
  int root = open(rootfs, O_DIRECTORY | O_PATH | O_CLOEXEC);
  if (root < 0) die("open root %s: %s", rootfs, strerror(errno));
  for (const auto& m : s.mounts) mount_entry(root, m, plan.cgroup_path.c_str());
  if (!dev_is_bound(s)) {
    for (const auto& d : kDefaultDevices) make_device(root, d.path, 'c', d.major, d.minor, 0666, 0, 0, userns);
    for (const auto& d : s.devices)
      make_device(root, d.path, d.type == 'u' ? 'c' : d.type, static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor),
                  d.file_mode, d.uid, d.gid, userns);
    symlink_in(root, "/proc/self/fd", "/dev/fd");
    symlink_in(root, "/proc/self/fd/0", "/dev/stdin");
    symlink_in(root, "/proc/self/fd/1", "/dev/stdout");
    symlink_in(root, "/proc/self/fd/2", "/dev/stderr");
    symlink_in(root, "pts/ptmx", "/dev/ptmx");
  }
  if (plan.pty_slave >= 0) {
    // The terminal is also the container's /dev/console, as with runc.
    int fd = ensure_in_root(root, "/dev/console", false);
    // By name: the slave's fd belongs to the agent's mount namespace, not this copy of it.
    if (mount(plan.pty_path.c_str(), fd_path(fd).c_str(), nullptr, MS_BIND, nullptr) != 0)
      die("binding the terminal on /dev/console: %s", strerror(errno));
    close(fd);
  }
  // The process's cwd must exist; runc creates it too.
  close(ensure_in_root(root, plan.process->cwd, true));

  int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  int newroot = open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (oldroot < 0 || newroot < 0) die("open / or the root: %s", strerror(errno));
  if (fchdir(newroot) != 0) die("fchdir: %s", strerror(errno));
  if (syscall(SYS_pivot_root, ".", ".") == 0) {
    if (fchdir(oldroot) != 0) die("fchdir: %s", strerror(errno));
    if (mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) != 0) die("old root: %s", strerror(errno));
    if (umount2(".", MNT_DETACH) != 0) die("detaching the old root: %s", strerror(errno));
  } else if (errno == EINVAL) {
    // The agent's own root is the initramfs, which cannot be pivoted away from.
    if (mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) die("moving the root: %s", strerror(errno));
    if (chroot(".") != 0) die("chroot: %s", strerror(errno));
  } else {
    die("pivot_root: %s", strerror(errno));
  }
  if (chdir("/") != 0) die("chdir /: %s", strerror(errno));
  close(oldroot);
  close(newroot);
  close(root);
  if (s.rootfs_propagation && mount(nullptr, "/", nullptr, s.rootfs_propagation, nullptr) != 0)
    die("rootfsPropagation: %s", strerror(errno));
}

void finish_rootfs(const LaunchPlan& plan) {
  const oci::Spec& s = *plan.spec;
  if (!(plan.new_namespaces & CLONE_NEWNS)) return;
  for (const auto& p : s.readonly_paths) {
    if (mount(p.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (errno == ENOENT) continue;
      die("readonly path %s: %s", p.c_str(), strerror(errno));
    }
    remount_bind(p.c_str(), MS_RDONLY, 0);
  }
  for (const auto& p : s.masked_paths) {
    struct stat st;
    if (stat(p.c_str(), &st) != 0) continue;
    int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", p.c_str(), "tmpfs", MS_RDONLY, nullptr)
                                  : mount("/dev/null", p.c_str(), nullptr, MS_BIND, nullptr);
    if (rc != 0) die("masking %s: %s", p.c_str(), strerror(errno));
  }
  if (s.root_readonly) remount_bind("/", MS_RDONLY, 0);
}

}  // namespace husk::agent::child
