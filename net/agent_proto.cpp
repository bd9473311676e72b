#include "net/agent_proto.h"

#include <sys/socket.h>

namespace husk::netlink {
namespace {

uint32_t family_number(int af) { return af == AF_INET6 ? 6 : 4; }

Result<int> family_of(uint32_t n, const std::string& what) {
  if (n == 4) return AF_INET;
  if (n == 6) return AF_INET6;
  return make_error(ErrorCode::kInvalidArgument, "%s: family must be 4 or 6, not %u", what.c_str(), n);
}

}  // namespace

agent::v1::Interface to_proto(const Interface& i) {
  agent::v1::Interface out;
  out.set_name(i.name);
  out.set_mac(mac_to_string(i.mac));
  out.set_mtu(i.mtu);
  out.set_up(i.up);
  out.set_kind(i.kind);
  for (const auto& a : i.addresses) {
    auto* pa = out.add_addresses();
    pa->set_family(family_number(a.family));
    pa->set_address(a.ip);
    pa->set_prefix(static_cast<uint32_t>(a.prefix));
  }
  return out;
}

agent::v1::Route to_proto(const Route& r) {
  agent::v1::Route out;
  out.set_family(family_number(r.family));
  out.set_destination(r.destination);
  out.set_gateway(r.gateway);
  out.set_device(r.device);
  out.set_source(r.source);
  out.set_scope(static_cast<uint32_t>(r.scope));
  return out;
}

agent::v1::Neighbour to_proto(const Neighbour& n) {
  agent::v1::Neighbour out;
  out.set_family(family_number(n.family));
  out.set_address(n.ip);
  out.set_mac(mac_to_string(n.mac));
  out.set_device(n.device);
  return out;
}

Result<Interface> from_proto(const agent::v1::Interface& in) {
  Interface i;
  i.name = in.name();
  auto mac = mac_from_string(in.mac());
  if (!mac) return make_error(ErrorCode::kInvalidArgument, "interface %s: %s", in.name().c_str(), mac.error().message.c_str());
  i.mac = *mac;
  if (!in.guest_mac().empty()) {
    auto now = mac_from_string(in.guest_mac());
    if (!now) return make_error(ErrorCode::kInvalidArgument, "interface %s guest MAC: %s", in.name().c_str(), now.error().message.c_str());
    i.current_mac = *now;
  }
  if (in.mtu() > 65535) return make_error(ErrorCode::kInvalidArgument, "interface %s: MTU %u is too large", in.name().c_str(), in.mtu());
  i.mtu = in.mtu();
  for (const auto& a : in.addresses()) {
    auto fam = family_of(a.family(), "interface " + in.name() + " address " + a.address());
    if (!fam) return fam.error();
    if (a.prefix() > (*fam == AF_INET ? 32u : 128u))
      return make_error(ErrorCode::kInvalidArgument, "interface %s address %s: prefix %u is out of range", in.name().c_str(),
                        a.address().c_str(), a.prefix());
    i.addresses.push_back({*fam, a.address(), static_cast<int>(a.prefix())});
  }
  return i;
}

Result<Route> from_proto(const agent::v1::Route& in) {
  auto fam = family_of(in.family(), "route " + in.destination());
  if (!fam) return fam.error();
  if (in.scope() > 255) return make_error(ErrorCode::kInvalidArgument, "route %s: scope %u is out of range", in.destination().c_str(), in.scope());
  return Route{*fam, in.destination(), in.gateway(), in.device(), in.source(), static_cast<int>(in.scope())};
}

Result<Neighbour> from_proto(const agent::v1::Neighbour& in) {
  auto fam = family_of(in.family(), "neighbour " + in.address());
  if (!fam) return fam.error();
  auto mac = mac_from_string(in.mac());
  if (!mac) return make_error(ErrorCode::kInvalidArgument, "neighbour %s: %s", in.address().c_str(), mac.error().message.c_str());
  return Neighbour{*fam, in.address(), *mac, in.device()};
}

}  // namespace husk::netlink
