// Connecting to a unix stream socket by path: the agent's vsock relay, husk-agentctl's hybrid
// vsock handshake and the ttrpc client all start this way.
#pragma once

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk {

Result<UniqueFd> connect_unix(const std::string& path);

}  // namespace husk
