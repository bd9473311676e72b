#include "guest-agent/init/guest_init.h"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/log.h"
#include "common/sockets.h"
#include "common/unique_fd.h"

namespace husk::agent {
namespace fs = std::filesystem;

namespace {

bool root_is_initramfs() {
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string id, parent, dev, root, mnt;
    is >> id >> parent >> dev >> root >> mnt;
    if (mnt == "/" && line.find(" - rootfs ") != std::string::npos) return true;
  }
  return false;
}

Status mount_one(const char* source, const char* target, const char* type, unsigned long flags, const char* data) {
  mkdir(target, 0755);
  if (mount(source, target, type, flags, data) != 0 && errno != EBUSY)
    return make_error("mount %s on %s: %s", type, target, strerror(errno));
  return {};
}

}  // namespace

Status leave_initramfs(char** argv) {
  // /proc is needed to tell; mount it early (it is mounted again, harmlessly, later).
  mkdir("/proc", 0555);
  mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  bool initramfs = root_is_initramfs();
  umount2("/proc", MNT_DETACH);
  if (!initramfs) return {};
  const char* nr = "/.husk-root";
  if (auto s = mount_one("tmpfs", nr, "tmpfs", 0, "mode=0755"); !s) return s;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/", ec)) {
    std::string name = e.path().filename();
    if (name == ".husk-root") continue;
    fs::path to = fs::path(nr) / name;
    if (name == "dev" || name == "proc" || name == "sys") {
      fs::create_directory(to, ec);  // device nodes come from devtmpfs
      continue;
    }
    fs::copy(e.path(), to, fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    if (ec) return make_error("copying %s out of the initramfs: %s", e.path().c_str(), ec.message().c_str());
  }
  // Free the initramfs' memory: its files now live on the tmpfs.
  for (const auto& e : fs::directory_iterator("/", ec)) {
    std::string name = e.path().filename();
    if (name == ".husk-root" || name == "dev") continue;
    fs::remove_all(e.path(), ec);
  }
  if (chdir(nr) != 0 || mount(".", "/", nullptr, MS_MOVE, nullptr) != 0 || chroot(".") != 0 || chdir("/") != 0)
    return make_error("moving the new root into place: %s", strerror(errno));
  execv(argv[0][0] == '/' ? argv[0] : "/init", argv);
  return make_error("re-executing %s: %s", argv[0], strerror(errno));
}

Status mount_guest_filesystems() {
  constexpr unsigned long kSafe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (auto s = mount_one("proc", "/proc", "proc", kSafe, nullptr); !s) return s;
  if (auto s = mount_one("sysfs", "/sys", "sysfs", kSafe, nullptr); !s) return s;
  if (auto s = mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"); !s) return s;
  if (auto s = mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"); !s) return s;
  if (auto s = mount_one("tmpfs", "/dev/shm", "tmpfs", kSafe, "mode=1777"); !s) return s;
  if (auto s = mount_one("cgroup2", "/sys/fs/cgroup", "cgroup2", kSafe, nullptr); !s) return s;
  if (auto s = mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"); !s) return s;
  if (auto s = mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"); !s) return s;
  mkdir("/etc", 0755);
  return {};
}

Status bring_up_loopback() {
  UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return make_error("socket: %s", strerror(errno));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return make_error("SIOCGIFFLAGS lo: %s", strerror(errno));
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) return make_error("SIOCSIFFLAGS lo: %s", strerror(errno));
  return {};
}

bool connect_log_port(unsigned port) {
  auto fd = connect_vsock(VMADDR_CID_HOST, port);
  if (!fd) return false;
  log::add_sink(fd->release());  // lives as long as the agent
  return true;
}

void power_off() {
  sync();
  // reboot(2) as PID 1: the kernel resets through the i8042, and husk-vmm exits with 0.
  reboot(RB_AUTOBOOT);
  _exit(0);
}

}  // namespace husk::agent
