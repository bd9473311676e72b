// A process's standard I/O through the agent, for every host-side client (the shim's FIFOs,
// husk-agentctl's terminal): output streams copied to a descriptor, a descriptor copied to the
// process's stdin. Each call runs until its stream ends or `ctx` is cancelled.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "proto/agent.grpc.pb.h"

namespace husk::agent_client {

// ReadStdout (or ReadStderr) of process (cid, eid) into `fd`, every byte, until the stream
// ends; stops early if `fd` stops taking data.
void copy_output(agent::v1::Agent::Stub& stub, grpc::ClientContext& ctx, const std::string& cid, const std::string& eid,
                 bool stderr_stream, int fd);

// `fd` into the process's stdin (WriteStdin) until EOF, then CloseStdin: the process sees EOF.
void copy_input(agent::v1::Agent::Stub& stub, grpc::ClientContext& ctx, const std::string& cid, const std::string& eid,
                int fd);

}  // namespace husk::agent_client
