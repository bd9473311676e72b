#include "common/inherited_fd.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace husk {

bool is_fd_spec(const std::string& text, int* n) {
  if (text.rfind("fd=", 0) != 0 || text.size() == 3 || text.size() > 12) return false;
  char* end = nullptr;
  long v = std::strtol(text.c_str() + 3, &end, 10);
  if (*end || v < 0 || v > 1 << 20) return false;
  *n = static_cast<int>(v);
  return true;
}

Result<UniqueFd> take_inherited_fd(int n) {
  // 0-2 are stdio: handing one of them over as a device's socket is a mistake, not a feature.
  if (n < 3) return make_error(ErrorCode::kInvalidArgument, "fd=%d: inherited descriptors start at 3", n);
  int flags = ::fcntl(n, F_GETFD);
  if (flags < 0) return make_error(ErrorCode::kInvalidArgument, "fd=%d is not open: %s", n, strerror(errno));
  ::fcntl(n, F_SETFD, flags | FD_CLOEXEC);
  return UniqueFd(n);
}

}  // namespace husk
