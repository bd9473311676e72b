#include "net/netns.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace husk::netlink {

Result<UniqueFd> open_netns(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return make_error(ErrorCode::kInvalidArgument, "network namespace %s: %s", path.c_str(), strerror(errno));
  struct statfs fs;
  if (fstatfs(fd.get(), &fs) != 0 || fs.f_type != NSFS_MAGIC || ::ioctl(fd.get(), NS_GET_NSTYPE) != CLONE_NEWNET)
    return make_error(ErrorCode::kInvalidArgument, "%s is not a network namespace", path.c_str());
  return fd;
}

Status in_netns(int netns_fd, const std::function<Status()>& fn) {
  Status result;
  std::thread t([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      result = make_error("entering the network namespace: %s", strerror(errno));
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

Result<UniqueFd> open_tap(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return make_error("tap name \"%s\" is empty or too long", name.c_str());
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) return make_error("opening /dev/net/tun: %s", strerror(errno));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return make_error("creating tap %s: %s", name.c_str(), strerror(errno));
  int hdr = 12;  // virtio_net_hdr_v1, as virtio 1.0 frames carry it
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr) != 0) return make_error("tap %s: TUNSETVNETHDRSZ: %s", name.c_str(), strerror(errno));
  return fd;
}

}  // namespace husk::netlink
