// Capability names ("CAP_NET_ADMIN") to numbers, through libcap so new capabilities need no
// table here.
#pragma once

#include <optional>
#include <string>

namespace husk::agent::oci {

std::optional<int> capability_from_name(const std::string& name);
// The highest capability the running kernel knows (/proc/sys/kernel/cap_last_cap).
int last_capability();

}  // namespace husk::agent::oci
