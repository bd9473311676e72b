// A pod's network namespace extended into its microVM, as Kata's default "tcfilter" model does:
// for each interface a CNI plugin put in the namespace (a veth with the pod IP), a tap made inside
// the same namespace, and tc ingress redirects from each to the other, so frames cross unchanged
// and the host side needs neither a bridge nor an address. The tap fd goes to husk-vmm (which
// never enters the namespace); the interface's name, MAC, MTU, addresses, routes and static
// neighbours go to the agent, which gives the guest's NIC the same identity.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "net/netlink.h"
#include "proto/agent.pb.h"

namespace husk::shim {

class PodNetwork {
 public:
  struct Link {
    netlink::Interface pod;  // the namespace's interface, as read
    std::string tap;         // its tap's name
    UniqueFd tap_fd;         // for husk-vmm (--net fd=N,MAC)
  };

  // Reads `netns_path` and mirrors every interface in it; on failure nothing is left behind.
  // Errors name the namespace and the interface.
  static Result<PodNetwork> attach(const std::string& netns_path);
  // Removes every tap and redirect husk made in the namespace (a vanished namespace is fine):
  // what `delete` does after the shim died. With `identity` (what identity() said at attach),
  // a path that names another namespace by now is left alone.
  static Status detach(const std::string& netns_path, const std::string& identity = "");
  // "device:inode" of the namespace attached: which namespace it was, whatever its path names later.
  std::string identity() const;

  PodNetwork(PodNetwork&& o) noexcept
      : path_(std::exchange(o.path_, {})), ns_(std::move(o.ns_)), links_(std::move(o.links_)), routes_(std::move(o.routes_)),
        neighbours_(std::move(o.neighbours_)) {}
  PodNetwork& operator=(PodNetwork&&) = delete;
  ~PodNetwork();

  std::vector<Link>& links() { return links_; }
  // What the agent needs: one UpdateInterface per link, then UpdateRoutes.
  std::vector<agent::v1::Interface> interfaces_for_guest() const;
  agent::v1::Routes routes_for_guest() const;
  // Removes the taps and redirects, once. Through the namespace fd attach opened: the path may
  // have been deleted since (the namespace lives while a tap fd or this fd holds it) or, in
  // principle, name another namespace by now.
  void stop();

  static constexpr const char* kTapSuffix = "_husk";

 private:
  PodNetwork() = default;
  static Status detach_in(int ns_fd);
  std::string path_;
  UniqueFd ns_;
  std::vector<Link> links_;
  std::vector<netlink::Route> routes_;
  std::vector<netlink::Neighbour> neighbours_;
};

}  // namespace husk::shim
