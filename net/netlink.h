// Network configuration over rtnetlink (libnl-route-3), shared by the shim and the agent: the shim
// reads a pod's network namespace and mirrors its interfaces onto taps; the agent gives the guest
// the same interfaces, addresses, routes and neighbours. Plain structs in, plain structs out: the
// agent API's messages are mapped at its edges.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

struct nl_sock;

namespace husk::netlink {

struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  std::string ip;  // "10.88.0.5"
  int prefix = 0;  // 24
  bool operator==(const IpAddress&) const = default;
};

struct Interface {
  int index = 0;
  std::string name;
  std::array<uint8_t, 6> mac{};
  uint32_t mtu = 0;
  std::string kind;  // "veth", "tun", "" (a physical or virtio NIC)...
  bool up = false;
  std::vector<IpAddress> addresses;  // global and link scope, as configured
  // configure(): the MAC the interface has now, when it is to get `mac` (a restored template's)
  std::optional<std::array<uint8_t, 6>> current_mac{};
};

struct Route {
  int family = 0;
  std::string destination;  // "10.88.0.0/16", or "" for the default route
  std::string gateway;      // "" when directly connected
  std::string device;       // interface name
  std::string source;       // preferred source, or ""
  int scope = 0;            // RT_SCOPE_UNIVERSE, RT_SCOPE_LINK...
  bool operator==(const Route&) const = default;
};

struct Neighbour {
  int family = 0;
  std::string ip;
  std::array<uint8_t, 6> mac{};
  std::string device;
};

std::string mac_to_string(const std::array<uint8_t, 6>& mac);
Result<std::array<uint8_t, 6>> mac_from_string(const std::string& s);

// One rtnetlink socket in the network namespace of the thread that opens it.
class Socket {
 public:
  static Result<Socket> open();
  Socket(Socket&&) noexcept = default;
  Socket& operator=(Socket&&) noexcept = default;
  ~Socket();
  nl_sock* get() const { return sk_.get(); }

  Result<std::vector<Interface>> interfaces();
  // Main-table routes of unicast type (what CNI plugins install), with their device names.
  Result<std::vector<Route>> routes();
  // Permanent neighbour entries (static ARP/NDP entries a CNI plugin may add).
  Result<std::vector<Neighbour>> neighbours();

  // Makes the interface with want.mac look like `want`: name, MTU, exactly these addresses, up.
  // The interface is found by MAC (the guest's virtio NIC has the pod interface's MAC), or by
  // want.current_mac and then given want.mac.
  Result<Interface> configure(const Interface& want);
  // Adds routes (device routes first so gateways are reachable); an existing equal route is fine.
  Status add_routes(const std::vector<Route>& routes);
  Status add_neighbours(const std::vector<Neighbour>& neighbours);
  Status set_up(const std::string& name, uint32_t mtu = 0);
  Status remove_link(const std::string& name);

  // tc: an ingress qdisc on each of `a` and `b` with a u32 match-all filter redirecting every frame
  // to the other's egress (Kata's "tcfilter" model: the veth a CNI plugin made and our tap become
  // one wire, with no bridge and no address on the host side).
  Status mirror(int a_index, int b_index);
  // Removes the ingress qdisc (and with it the filters) from an interface; absent is fine.
  Status unmirror(int index);

 private:
  struct Free {
    void operator()(nl_sock* s) const;
  };
  explicit Socket(nl_sock* s) : sk_(s) {}
  std::unique_ptr<nl_sock, Free> sk_;
};

}  // namespace husk::netlink
