// The agent API's network messages <-> the netlink structs: the shim fills the messages from the
// pod's namespace, the agent applies them in the guest. One mapping, both directions, checked.
#pragma once

#include "common/result.h"
#include "net/netlink.h"
#include "proto/agent.pb.h"

namespace husk::netlink {

agent::v1::Interface to_proto(const Interface& i);
agent::v1::Route to_proto(const Route& r);
agent::v1::Neighbour to_proto(const Neighbour& n);

// Malformed fields (family, MAC, prefix) are errors that name the field.
Result<Interface> from_proto(const agent::v1::Interface& i);
Result<Route> from_proto(const agent::v1::Route& r);
Result<Neighbour> from_proto(const agent::v1::Neighbour& n);

}  // namespace husk::netlink
