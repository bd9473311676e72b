#include "shim/network.h"

#include <net/if.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/tap.h"
#include "net/agent_proto.h"
#include "net/netns.h"

namespace husk::shim {
namespace {

// What can be mirrored: Ethernet-like interfaces with their own MAC. Tunnels, bridges and our own
// taps cannot (or must not) be.
bool mirrorable(const netlink::Interface& i) { return i.kind == "veth" || i.kind == "macvlan" || i.kind.empty(); }

bool is_our_tap(const netlink::Interface& i) {
  std::string suffix = PodNetwork::kTapSuffix;
  return i.kind == "tun" && i.name.size() > suffix.size() && i.name.compare(i.name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<PodNetwork> PodNetwork::attach(const std::string& netns_path) {
  auto ns = netlink::open_netns(netns_path);
  if (!ns) return ns.error();
  PodNetwork net;
  net.path_ = netns_path;
  net.ns_ = std::move(*ns);
  auto work = [&]() -> Status {
    auto sock = netlink::Socket::open();
    if (!sock) return sock.error();
    auto ifs = sock->interfaces();
    if (!ifs) return ifs.error();
    int n = 0;
    for (const auto& i : *ifs) {
      if (i.kind == "loopback" || is_our_tap(i)) continue;
      if (!mirrorable(i))
        return make_error(ErrorCode::kFailedPrecondition, "interface %s (%s) cannot be extended into a VM: only veth, macvlan and plain Ethernet interfaces can",
                          i.name.c_str(), i.kind.c_str());
      if (i.addresses.empty())
        return make_error(ErrorCode::kFailedPrecondition, "interface %s has no IP address: nothing to give the guest", i.name.c_str());
      Link l;
      l.pod = i;
      l.tap = "tap" + std::to_string(n++) + kTapSuffix;
      auto fd = open_tap(l.tap, false);
      if (!fd) return fd.error();
      l.tap_fd = std::move(*fd);
      net.links_.push_back(std::move(l));
      auto& added = net.links_.back();
      if (auto s = sock->set_up(added.tap, i.mtu); !s) return s;
      // This thread is in the namespace, so the name resolves there.
      unsigned tap_index = if_nametoindex(added.tap.c_str());
      if (tap_index == 0) return make_error("tap %s vanished: %s", added.tap.c_str(), strerror(errno));
      if (auto s = sock->mirror(i.index, static_cast<int>(tap_index)); !s)
        return s.error().wrap("joining " + i.name + " and " + added.tap + ": ");
    }
    if (net.links_.empty()) return make_error(ErrorCode::kFailedPrecondition, "no interface to extend into the VM");
    auto routes = sock->routes();
    if (!routes) return routes.error();
    auto neighbours = sock->neighbours();
    if (!neighbours) return neighbours.error();
    auto ours = [&](const std::string& dev) {
      return std::any_of(net.links_.begin(), net.links_.end(), [&](const Link& l) { return l.pod.name == dev; });
    };
    for (const auto& r : *routes)
      if (ours(r.device)) net.routes_.push_back(r);
    for (const auto& nb : *neighbours)
      if (ours(nb.device)) net.neighbours_.push_back(nb);
    return {};
  };
  if (auto s = netlink::in_netns(net.ns_.get(), work); !s) {
    net.stop();
    return s.error().wrap("network namespace " + netns_path + ": ");
  }
  for (const auto& l : net.links_)
    LOG_INFO("network namespace %s: %s (%s) joined to %s", netns_path.c_str(), l.pod.name.c_str(),
             netlink::mac_to_string(l.pod.mac).c_str(), l.tap.c_str());
  return net;
}

namespace {
std::string identity_of(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}
}  // namespace

std::string PodNetwork::identity() const { return ns_ ? identity_of(ns_.get()) : ""; }

Status PodNetwork::detach(const std::string& netns_path, const std::string& identity) {
  auto ns = netlink::open_netns(netns_path);
  if (!ns) return {};  // the namespace is gone, and with it everything in it
  if (!identity.empty() && identity_of(ns->get()) != identity) {
    LOG_INFO("network namespace %s is not the sandbox's any more: left alone", netns_path.c_str());
    return {};
  }
  return detach_in(ns->get());
}

Status PodNetwork::detach_in(int ns_fd) {
  return netlink::in_netns(ns_fd, [&]() -> Status {
    auto sock = netlink::Socket::open();
    if (!sock) return sock.error();
    auto ifs = sock->interfaces();
    if (!ifs) return ifs.error();
    Status result;
    for (const auto& i : *ifs) {
      Status s;
      if (is_our_tap(i)) s = sock->remove_link(i.name);
      else if (i.kind != "loopback" && mirrorable(i)) s = sock->unmirror(i.index);
      if (!s && result) result = s;
    }
    return result;
  });
}

PodNetwork::~PodNetwork() { stop(); }

void PodNetwork::stop() {
  if (path_.empty()) return;
  links_.clear();  // closing a tap fd removes a non-persistent tap
  if (auto s = detach_in(ns_.get()); !s) LOG_WARN("network namespace %s: %s", path_.c_str(), s.error().message.c_str());
  path_.clear();
  ns_.reset();
}

std::vector<agent::v1::Interface> PodNetwork::interfaces_for_guest() const {
  std::vector<agent::v1::Interface> out;
  for (const auto& l : links_) out.push_back(netlink::to_proto(l.pod));
  return out;
}

agent::v1::Routes PodNetwork::routes_for_guest() const {
  agent::v1::Routes out;
  for (const auto& r : routes_) *out.add_routes() = netlink::to_proto(r);
  for (const auto& n : neighbours_) *out.add_neighbours() = netlink::to_proto(n);
  return out;
}

}  // namespace husk::shim
