#include "net/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
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

}  // namespace husk::netlink
