// The Restored request a host sends to the agent of a VM restored from a snapshot: fresh
// entropy from the host's CRNG and the host's wall clock (shared by the shim and husk-agentctl).
#pragma once

#include "common/result.h"
#include "proto/agent.pb.h"

namespace husk::agent_client {

Result<husk::agent::v1::RestoredRequest> restored_request();

}  // namespace husk::agent_client
