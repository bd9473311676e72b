// Guest networking: the interfaces, routes and neighbours the shim read from the pod's network
// namespace, applied in the agent's own namespace (the guest's root one, which the containers of a
// pod share). An agent on a host refuses unless told the namespace is its own: it could rewire the host.
#include "guest-agent/service/agent_service.h"
#include "guest-agent/service/status.h"
#include "net/agent_proto.h"

namespace husk::agent {
namespace {

using grpc::Status;

Result<netlink::Socket> open_socket(bool allowed) {
  if (!allowed)
    return make_error(ErrorCode::kFailedPrecondition,
                      "network calls reconfigure the agent's network namespace, which on a host may be the host's: start "
                      "the host agent in a namespace of its own with --configure-network");
  auto s = netlink::Socket::open();
  if (!s) return make_error(ErrorCode::kInternal, "%s", s.error().message.c_str());
  return s;
}

}  // namespace

Status AgentService::UpdateInterface(grpc::ServerContext*, const v1::Interface* req, v1::Interface* out) {
  auto want = netlink::from_proto(*req);
  if (!want) return to_grpc(want.error());
  auto sock = open_socket(opts_.configure_network);
  if (!sock) return to_grpc(sock.error());
  // The loopback first: a pod's containers talk to each other over it.
  if (auto s = sock->set_up("lo"); !s) return to_grpc(Error(s.error().message, ErrorCode::kInternal));
  auto done = sock->configure(*want);
  if (!done) return to_grpc(Error(done.error().message, ErrorCode::kFailedPrecondition));
  *out = netlink::to_proto(*done);
  return Status::OK;
}

Status AgentService::UpdateRoutes(grpc::ServerContext* ctx, const v1::Routes* req, v1::Routes* out) {
  std::vector<netlink::Route> routes;
  std::vector<netlink::Neighbour> neighbours;
  for (const auto& r : req->routes()) {
    auto x = netlink::from_proto(r);
    if (!x) return to_grpc(x.error());
    routes.push_back(*x);
  }
  for (const auto& n : req->neighbours()) {
    auto x = netlink::from_proto(n);
    if (!x) return to_grpc(x.error());
    neighbours.push_back(*x);
  }
  auto sock = open_socket(opts_.configure_network);
  if (!sock) return to_grpc(sock.error());
  if (auto s = sock->add_routes(routes); !s) return to_grpc(Error(s.error().message, ErrorCode::kFailedPrecondition));
  if (auto s = sock->add_neighbours(neighbours); !s) return to_grpc(Error(s.error().message, ErrorCode::kFailedPrecondition));
  return ListRoutes(ctx, nullptr, out);
}

Status AgentService::ListInterfaces(grpc::ServerContext*, const v1::ListInterfacesRequest*, v1::Interfaces* out) {
  auto sock = netlink::Socket::open();  // reading is harmless anywhere
  if (!sock) return to_grpc(Error(sock.error().message, ErrorCode::kInternal));
  auto ifs = sock->interfaces();
  if (!ifs) return to_grpc(Error(ifs.error().message, ErrorCode::kInternal));
  for (const auto& i : *ifs) *out->add_interfaces() = netlink::to_proto(i);
  return Status::OK;
}

Status AgentService::ListRoutes(grpc::ServerContext*, const v1::ListRoutesRequest*, v1::Routes* out) {
  auto sock = netlink::Socket::open();
  if (!sock) return to_grpc(Error(sock.error().message, ErrorCode::kInternal));
  auto routes = sock->routes();
  if (!routes) return to_grpc(Error(routes.error().message, ErrorCode::kInternal));
  auto neighbours = sock->neighbours();
  if (!neighbours) return to_grpc(Error(neighbours.error().message, ErrorCode::kInternal));
  out->clear_routes();
  out->clear_neighbours();
  for (const auto& r : *routes) *out->add_routes() = netlink::to_proto(r);
  for (const auto& n : *neighbours) *out->add_neighbours() = netlink::to_proto(n);
  return Status::OK;
}

}  // namespace husk::agent
