// The vsock ports between the host and husk-agent in a microVM.
#pragma once

namespace husk::agent {

// The agent's gRPC API (host-initiated streams).
inline constexpr unsigned kAgentPort = 1024;
// Once it listens, the agent connects to the host's port kReadyPort and says "ready\n": the
// shim learns the guest is up from the guest instead of polling (husk-vmm hands that one stream
// to a socket the shim holds: --vsock CID,fd=N,1023=fd=M).
inline constexpr unsigned kReadyPort = 1023;

}  // namespace husk::agent
