#include "guest-agent/client/restored.h"

#include <sys/random.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace husk::agent_client {

Result<husk::agent::v1::RestoredRequest> restored_request() {
  husk::agent::v1::RestoredRequest req;
  std::string seed(64, '\0');
  if (::getrandom(seed.data(), seed.size(), 0) != static_cast<ssize_t>(seed.size()))
    return make_error("getrandom: %s", std::strerror(errno));
  req.set_entropy(seed);
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  req.mutable_wall_clock()->set_seconds(now.tv_sec);
  req.mutable_wall_clock()->set_nanos(static_cast<int32_t>(now.tv_nsec));
  return req;
}

}  // namespace husk::agent_client
