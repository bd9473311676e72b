#include "common/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace husk {

Result<UniqueFd> open_tap(const std::string& name, bool nonblock) {
  if (name.empty() || name.size() >= IFNAMSIZ) return make_error("tap name \"%s\" is empty or too long", name.c_str());
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)));
  if (!fd) return make_error("opening /dev/net/tun: %s", strerror(errno));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return make_error("creating or attaching to tap %s: %s", name.c_str(), strerror(errno));
  int hdr = kVnetHdrSize;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr) != 0) return make_error("tap %s: TUNSETVNETHDRSZ: %s", name.c_str(), strerror(errno));
  return fd;
}

}  // namespace husk
