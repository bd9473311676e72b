// The one place the agent's errors become gRPC statuses (same codes, same message).
#pragma once

#include <grpcpp/grpcpp.h>

#include "common/result.h"

namespace husk::agent {

inline grpc::Status to_grpc(const Error& e) { return grpc::Status(static_cast<grpc::StatusCode>(e.code), e.message); }
inline grpc::Status to_grpc(const husk::Status& s) { return s ? grpc::Status::OK : to_grpc(s.error()); }

}  // namespace husk::agent
