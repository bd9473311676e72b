// The one rule for container and exec ids, wherever they arrive (the shim from containerd, the
// agent from the shim or husk-agentctl): containerd's identifier rule — alphanumerics, joined by
// single '.', '_' or '-', at most 76 characters. Ids become path components (bundle, state and
// share directories, cgroups), so nothing else may pass.
#pragma once

#include <string_view>

#include "common/result.h"

namespace husk {

inline constexpr size_t kMaxIdLength = 76;

bool valid_id(std::string_view id);
// InvalidArgument naming `what` ("task id", "exec id") and the offending id.
Status check_id(std::string_view what, std::string_view id);

}  // namespace husk
