// The agent's container statistics as containerd's io.containerd.cgroups.v2.Metrics, the type
// `ctr task metrics` and the CRI plugin decode.
#pragma once

#include <google/protobuf/any.pb.h>

#include "proto/agent.pb.h"

namespace husk::shim {

google::protobuf::Any metrics_from(const agent::v1::ContainerStats& stats);

}  // namespace husk::shim
