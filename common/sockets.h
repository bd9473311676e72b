// Connecting stream sockets: unix by path (the agent's vsock relay, husk-agentctl's hybrid vsock
// handshake, the ttrpc client) and AF_VSOCK by CID and port (the guest's log connection,
// husk-agentctl behind a kernel vsock transport).
#pragma once

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk {

Result<UniqueFd> connect_unix(const std::string& path);
Result<UniqueFd> connect_vsock(unsigned cid, unsigned port);

}  // namespace husk
