// Stream sockets: connecting by unix path (the agent's vsock relay, husk-agentctl's hybrid vsock
// handshake, the ttrpc client, the VMM's guest-initiated vsock streams) and AF_VSOCK by CID and
// port (the guest's log connection, husk-agentctl behind a kernel vsock transport); listening on
// a unix path (the VMM's hybrid vsock socket, the shim's task socket).
#pragma once

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk {

// `nonblocking`: the socket is O_NONBLOCK, and a listener whose backlog is full answers EAGAIN
// at once instead of making the caller wait.
Result<UniqueFd> connect_unix(const std::string& path, bool nonblocking = false);
Result<UniqueFd> connect_vsock(unsigned cid, unsigned port);
// Binds and listens on `path`, replacing a stale socket file left there by a dead owner. The
// socket file gets `mode` (owner only by default; its directory should be private too, as
// the mode is set just after bind).
Result<UniqueFd> listen_unix(const std::string& path, int backlog, bool nonblocking = false, unsigned mode = 0600);

}  // namespace husk
