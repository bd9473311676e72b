#include "guest-agent/oci/capabilities.h"

#include <sys/capability.h>

#include <fstream>

namespace husk::agent::oci {

std::optional<int> capability_from_name(const std::string& name) {
  // libcap accepts both "cap_chown" and "CAP_CHOWN"; the spec requires the prefix.
  if (name.size() < 5 || (name.compare(0, 4, "CAP_") != 0)) return std::nullopt;
  cap_value_t v;
  if (cap_from_name(name.c_str(), &v) != 0) return std::nullopt;
  if (v < 0 || v > 63) return std::nullopt;
  return static_cast<int>(v);
}

int last_capability() {
  static const int last = [] {
    std::ifstream f("/proc/sys/kernel/cap_last_cap");
    int v = CAP_LAST_CAP;
    if (f >> v && v >= 0 && v <= 63) return v;
    return static_cast<int>(CAP_LAST_CAP);
  }();
  return last;
}

}  // namespace husk::agent::oci
