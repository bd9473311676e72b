#include "net/netlink.h"

#include <arpa/inet.h>
#include <net/if_arp.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/addr.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/route.h>

#include <algorithm>
#include <cstdio>
#include <map>

namespace husk::netlink {
namespace {

struct CacheFree {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using Cache = std::unique_ptr<nl_cache, CacheFree>;
struct AddrFree {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using Addr = std::unique_ptr<nl_addr, AddrFree>;
struct LinkFree {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using Link = std::unique_ptr<rtnl_link, LinkFree>;
struct RtAddrFree {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct RouteFree {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
struct NeighFree {
  void operator()(rtnl_neigh* n) const { rtnl_neigh_put(n); }
};
struct QdiscFree {
  void operator()(rtnl_qdisc* q) const { rtnl_qdisc_put(q); }
};
struct ClsFree {
  void operator()(rtnl_cls* c) const { rtnl_cls_put(c); }
};
struct ActFree {
  void operator()(rtnl_act* a) const { rtnl_act_put(a); }
};

Error nl_error(const std::string& what, int err) { return make_error("%s: %s", what.c_str(), nl_geterror(err)); }

template <typename Obj, typename F>
void for_each(nl_cache* c, F&& f) {
  for (nl_object* o = nl_cache_get_first(c); o; o = nl_cache_get_next(o)) f(reinterpret_cast<Obj*>(o));
}

std::string ip_of(nl_addr* a) {
  if (!a) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  int fam = nl_addr_get_family(a);
  if ((fam == AF_INET || fam == AF_INET6) && nl_addr_get_len(a) > 0)
    inet_ntop(fam, nl_addr_get_binary_addr(a), buf, sizeof buf);
  return buf;
}

std::array<uint8_t, 6> mac_of(nl_addr* a) {
  std::array<uint8_t, 6> mac{};
  if (a && nl_addr_get_len(a) == 6) std::copy_n(static_cast<const uint8_t*>(nl_addr_get_binary_addr(a)), 6, mac.begin());
  return mac;
}

Result<Addr> parse_addr(const std::string& text, int family) {
  nl_addr* a = nullptr;
  if (int e = nl_addr_parse(text.c_str(), family, &a); e < 0) return nl_error("address " + text, e);
  return Addr(a);
}

Result<Addr> mac_addr(const std::array<uint8_t, 6>& mac) {
  nl_addr* a = nl_addr_build(AF_LLC, mac.data(), mac.size());
  if (!a) return make_error("out of memory building a MAC address");
  return Addr(a);
}

Result<Cache> link_cache(nl_sock* sk) {
  nl_cache* c = nullptr;
  if (int e = rtnl_link_alloc_cache(sk, AF_UNSPEC, &c); e < 0) return nl_error("listing links", e);
  return Cache(c);
}

}  // namespace

std::string mac_to_string(const std::array<uint8_t, 6>& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

Result<std::array<uint8_t, 6>> mac_from_string(const std::string& s) {
  unsigned v[6];
  char extra;
  if (s.size() != 17 || std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6)
    return make_error("MAC address \"%s\" is not of the form aa:bb:cc:dd:ee:ff", s.c_str());
  std::array<uint8_t, 6> mac{};
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(v[i]);
  return mac;
}

void Socket::Free::operator()(nl_sock* s) const { nl_socket_free(s); }

Socket::~Socket() = default;

Result<Socket> Socket::open() {
  nl_sock* s = nl_socket_alloc();
  if (!s) return make_error("out of memory allocating a netlink socket");
  Socket sock(s);
  if (int e = nl_connect(s, NETLINK_ROUTE); e < 0) return nl_error("connecting to rtnetlink", e);
  return sock;
}

Result<std::vector<Interface>> Socket::interfaces() {
  auto links = link_cache(get());
  if (!links) return links.error();
  nl_cache* ac = nullptr;
  if (int e = rtnl_addr_alloc_cache(get(), &ac); e < 0) return nl_error("listing addresses", e);
  Cache addrs(ac);
  std::vector<Interface> out;
  for_each<rtnl_link>(links->get(), [&](rtnl_link* l) {
    Interface i;
    i.index = rtnl_link_get_ifindex(l);
    i.name = rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "";
    i.mac = mac_of(rtnl_link_get_addr(l));
    i.mtu = rtnl_link_get_mtu(l);
    i.kind = rtnl_link_get_type(l) ? rtnl_link_get_type(l) : "";
    if (rtnl_link_get_arptype(l) == ARPHRD_LOOPBACK) i.kind = "loopback";
    i.up = rtnl_link_get_flags(l) & IFF_UP;
    out.push_back(std::move(i));
  });
  for_each<rtnl_addr>(addrs.get(), [&](rtnl_addr* a) {
    auto it = std::find_if(out.begin(), out.end(), [&](const Interface& i) { return i.index == rtnl_addr_get_ifindex(a); });
    if (it == out.end()) return;
    IpAddress ip{rtnl_addr_get_family(a), ip_of(rtnl_addr_get_local(a)), rtnl_addr_get_prefixlen(a)};
    // IPv6 link-local addresses follow from the MAC on both sides: not configuration.
    if (ip.family == AF_INET6 && ip.ip.rfind("fe80:", 0) == 0) return;
    if (!ip.ip.empty()) it->addresses.push_back(ip);
  });
  std::sort(out.begin(), out.end(), [](const Interface& a, const Interface& b) { return a.index < b.index; });
  return out;
}

Result<std::vector<Route>> Socket::routes() {
  auto links = link_cache(get());
  if (!links) return links.error();
  nl_cache* rc = nullptr;
  if (int e = rtnl_route_alloc_cache(get(), AF_UNSPEC, 0, &rc); e < 0) return nl_error("listing routes", e);
  Cache routes(rc);
  std::vector<Route> out;
  for_each<rtnl_route>(routes.get(), [&](rtnl_route* r) {
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST) return;
    int fam = rtnl_route_get_family(r);
    if (fam != AF_INET && fam != AF_INET6) return;
    Route rt;
    rt.family = fam;
    nl_addr* dst = rtnl_route_get_dst(r);
    if (dst && nl_addr_get_prefixlen(dst) > 0) rt.destination = ip_of(dst) + "/" + std::to_string(nl_addr_get_prefixlen(dst));
    // IPv6 link-local routes come with every interface.
    if (fam == AF_INET6 && rt.destination.rfind("fe80:", 0) == 0) return;
    rt.scope = rtnl_route_get_scope(r);
    rt.source = ip_of(rtnl_route_get_pref_src(r));
    if (rtnl_route_get_nnexthops(r) > 0) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
      rt.gateway = ip_of(rtnl_route_nh_get_gateway(nh));
      char name[IF_NAMESIZE] = {};
      if (rtnl_link_i2name(links->get(), rtnl_route_nh_get_ifindex(nh), name, sizeof name)) rt.device = name;
    }
    out.push_back(std::move(rt));
  });
  return out;
}

Result<std::vector<Neighbour>> Socket::neighbours() {
  auto links = link_cache(get());
  if (!links) return links.error();
  nl_cache* nc = nullptr;
  if (int e = rtnl_neigh_alloc_cache(get(), &nc); e < 0) return nl_error("listing neighbours", e);
  Cache neigh(nc);
  std::vector<Neighbour> out;
  for_each<rtnl_neigh>(neigh.get(), [&](rtnl_neigh* n) {
    if (!(rtnl_neigh_get_state(n) & NUD_PERMANENT)) return;
    int fam = rtnl_neigh_get_family(n);
    if (fam != AF_INET && fam != AF_INET6) return;
    Neighbour nb{fam, ip_of(rtnl_neigh_get_dst(n)), mac_of(rtnl_neigh_get_lladdr(n)), ""};
    char name[IF_NAMESIZE] = {};
    if (rtnl_link_i2name(links->get(), rtnl_neigh_get_ifindex(n), name, sizeof name)) nb.device = name;
    out.push_back(std::move(nb));
  });
  return out;
}

Result<Interface> Socket::configure(const Interface& want) {
  if (want.name.empty() || want.name.size() >= IF_NAMESIZE)
    return make_error("interface name \"%s\" is empty or too long", want.name.c_str());
  auto now = interfaces();
  if (!now) return now.error();
  const auto& find = want.current_mac ? *want.current_mac : want.mac;
  auto it = std::find_if(now->begin(), now->end(), [&](const Interface& i) { return i.mac == find && i.kind != "loopback"; });
  if (it == now->end()) return make_error("no interface has MAC %s", mac_to_string(find).c_str());
  rtnl_link* raw = nullptr;
  if (int e = rtnl_link_get_kernel(get(), it->index, nullptr, &raw); e < 0) return nl_error("reading link " + it->name, e);
  Link orig(raw);
  Link change(rtnl_link_alloc());
  if (!change) return make_error("out of memory");
  // A name (and, for some drivers, the MAC) can change only while the link is down.
  if (it->name != want.name || it->mac != want.mac) {
    rtnl_link_unset_flags(change.get(), IFF_UP);
    if (int e = rtnl_link_change(get(), orig.get(), change.get(), 0); e < 0) return nl_error("taking " + it->name + " down", e);
    change.reset(rtnl_link_alloc());
    if (it->name != want.name) rtnl_link_set_name(change.get(), want.name.c_str());
  }
  if (it->mac != want.mac) {
    Addr lladdr(nl_addr_build(AF_LLC, want.mac.data(), want.mac.size()));
    if (!lladdr) return make_error("out of memory");
    rtnl_link_set_addr(change.get(), lladdr.get());
  }
  if (want.mtu) rtnl_link_set_mtu(change.get(), want.mtu);
  if (int e = rtnl_link_change(get(), orig.get(), change.get(), 0); e < 0)
    return nl_error("renaming " + it->name + " to " + want.name + " / setting MTU " + std::to_string(want.mtu), e);
  // Exactly the wanted addresses: remove others (a stale one would answer for a foreign IP).
  for (const auto& a : it->addresses) {
    if (std::find(want.addresses.begin(), want.addresses.end(), a) != want.addresses.end()) continue;
    std::unique_ptr<rtnl_addr, RtAddrFree> del(rtnl_addr_alloc());
    auto local = parse_addr(a.ip + "/" + std::to_string(a.prefix), a.family);
    if (!local) return local.error();
    rtnl_addr_set_ifindex(del.get(), it->index);
    rtnl_addr_set_local(del.get(), local->get());
    if (int e = rtnl_addr_delete(get(), del.get(), 0); e < 0) return nl_error("removing " + a.ip + " from " + want.name, e);
  }
  for (const auto& a : want.addresses) {
    if (a.family != AF_INET && a.family != AF_INET6) return make_error("address %s: unknown family %d", a.ip.c_str(), a.family);
    int max = a.family == AF_INET ? 32 : 128;
    if (a.prefix < 0 || a.prefix > max) return make_error("address %s/%d: prefix out of range", a.ip.c_str(), a.prefix);
    if (std::find(it->addresses.begin(), it->addresses.end(), a) != it->addresses.end()) continue;
    auto local = parse_addr(a.ip + "/" + std::to_string(a.prefix), a.family);
    if (!local) return local.error();
    std::unique_ptr<rtnl_addr, RtAddrFree> add(rtnl_addr_alloc());
    rtnl_addr_set_ifindex(add.get(), it->index);
    rtnl_addr_set_local(add.get(), local->get());
    if (int e = rtnl_addr_add(get(), add.get(), 0); e < 0) return nl_error("adding " + a.ip + " to " + want.name, e);
  }
  if (auto s = set_up(want.name); !s) return s.error();
  auto after = interfaces();
  if (!after) return after.error();
  for (auto& i : *after)
    if (i.index == it->index) return i;
  return make_error("interface %s vanished while it was configured", want.name.c_str());
}

Status Socket::set_up(const std::string& name, uint32_t mtu) {
  rtnl_link* raw = nullptr;
  if (int e = rtnl_link_get_kernel(get(), 0, name.c_str(), &raw); e < 0) return nl_error("finding link " + name, e);
  Link orig(raw);
  Link change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (mtu) rtnl_link_set_mtu(change.get(), mtu);
  if (int e = rtnl_link_change(get(), orig.get(), change.get(), 0); e < 0) return nl_error("bringing " + name + " up", e);
  return {};
}

Status Socket::remove_link(const std::string& name) {
  Link l(rtnl_link_alloc());
  rtnl_link_set_name(l.get(), name.c_str());
  if (int e = rtnl_link_delete(get(), l.get()); e < 0 && e != -NLE_OBJ_NOTFOUND && e != -NLE_NODEV)
    return nl_error("removing link " + name, e);
  return {};
}

Status Socket::add_routes(const std::vector<Route>& routes) {
  auto links = link_cache(get());
  if (!links) return links.error();
  // Routes without a gateway first: a gateway must be reachable when its route is added.
  std::vector<const Route*> order;
  for (const auto& r : routes) order.push_back(&r);
  std::stable_partition(order.begin(), order.end(), [](const Route* r) { return r->gateway.empty(); });
  for (const Route* r : order) {
    if (r->family != AF_INET && r->family != AF_INET6) return make_error("route %s: unknown family %d", r->destination.c_str(), r->family);
    std::string what = "route " + (r->destination.empty() ? std::string("default") : r->destination) +
                       (r->gateway.empty() ? "" : " via " + r->gateway) + " dev " + r->device;
    int ifindex = r->device.empty() ? 0 : rtnl_link_name2i(links->get(), r->device.c_str());
    if (!r->device.empty() && ifindex == 0) return make_error("%s: no interface %s", what.c_str(), r->device.c_str());
    std::unique_ptr<rtnl_route, RouteFree> rt(rtnl_route_alloc());
    rtnl_route_set_family(rt.get(), static_cast<uint8_t>(r->family));
    rtnl_route_set_table(rt.get(), RT_TABLE_MAIN);
    rtnl_route_set_protocol(rt.get(), RTPROT_BOOT);
    rtnl_route_set_type(rt.get(), RTN_UNICAST);
    rtnl_route_set_scope(rt.get(), static_cast<uint8_t>(r->scope));
    auto dst = parse_addr(r->destination.empty() ? "default" : r->destination, r->family);
    if (!dst) return dst.error();
    rtnl_route_set_dst(rt.get(), dst->get());
    if (!r->source.empty()) {
      auto src = parse_addr(r->source, r->family);
      if (!src) return src.error();
      rtnl_route_set_pref_src(rt.get(), src->get());
    }
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (ifindex) rtnl_route_nh_set_ifindex(nh, ifindex);
    if (!r->gateway.empty()) {
      auto gw = parse_addr(r->gateway, r->family);
      if (!gw) {
        rtnl_route_nh_free(nh);
        return gw.error();
      }
      rtnl_route_nh_set_gateway(nh, gw->get());
    }
    rtnl_route_add_nexthop(rt.get(), nh);  // the route owns it from here
    if (int e = rtnl_route_add(get(), rt.get(), NLM_F_CREATE | NLM_F_REPLACE); e < 0) return nl_error(what, e);
  }
  return {};
}

Status Socket::add_neighbours(const std::vector<Neighbour>& neighbours) {
  auto links = link_cache(get());
  if (!links) return links.error();
  for (const auto& n : neighbours) {
    int ifindex = rtnl_link_name2i(links->get(), n.device.c_str());
    if (ifindex == 0) return make_error("neighbour %s: no interface %s", n.ip.c_str(), n.device.c_str());
    auto dst = parse_addr(n.ip, n.family);
    if (!dst) return dst.error();
    auto ll = mac_addr(n.mac);
    if (!ll) return ll.error();
    std::unique_ptr<rtnl_neigh, NeighFree> nb(rtnl_neigh_alloc());
    rtnl_neigh_set_ifindex(nb.get(), ifindex);
    rtnl_neigh_set_dst(nb.get(), dst->get());
    rtnl_neigh_set_lladdr(nb.get(), ll->get());
    rtnl_neigh_set_state(nb.get(), NUD_PERMANENT);
    if (int e = rtnl_neigh_add(get(), nb.get(), NLM_F_CREATE | NLM_F_REPLACE); e < 0)
      return nl_error("neighbour " + n.ip + " on " + n.device, e);
  }
  return {};
}

Status Socket::mirror(int a, int b) {
  for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
    std::unique_ptr<rtnl_qdisc, QdiscFree> q(rtnl_qdisc_alloc());
    rtnl_tc_set_ifindex(TC_CAST(q.get()), from);
    rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_INGRESS);
    rtnl_tc_set_handle(TC_CAST(q.get()), TC_HANDLE(0xffff, 0));
    if (int e = rtnl_tc_set_kind(TC_CAST(q.get()), "ingress"); e < 0) return nl_error("tc ingress qdisc", e);
    if (int e = rtnl_qdisc_add(get(), q.get(), NLM_F_CREATE | NLM_F_EXCL); e < 0)
      return nl_error("adding an ingress qdisc to interface " + std::to_string(from), e);
    std::unique_ptr<rtnl_cls, ClsFree> f(rtnl_cls_alloc());
    rtnl_tc_set_ifindex(TC_CAST(f.get()), from);
    rtnl_tc_set_parent(TC_CAST(f.get()), TC_HANDLE(0xffff, 0));
    if (int e = rtnl_tc_set_kind(TC_CAST(f.get()), "u32"); e < 0) return nl_error("tc u32 filter", e);
    rtnl_cls_set_protocol(f.get(), ETH_P_ALL);
    rtnl_cls_set_prio(f.get(), 1);
    rtnl_u32_add_key_uint8(f.get(), 0, 0, 0, 0);  // match u8 0 0: every frame
    rtnl_u32_set_cls_terminal(f.get());
    std::unique_ptr<rtnl_act, ActFree> act(rtnl_act_alloc());
    if (int e = rtnl_tc_set_kind(TC_CAST(act.get()), "mirred"); e < 0) return nl_error("tc mirred action", e);
    rtnl_mirred_set_action(act.get(), TCA_EGRESS_REDIR);
    rtnl_mirred_set_policy(act.get(), TC_ACT_STOLEN);
    rtnl_mirred_set_ifindex(act.get(), static_cast<uint32_t>(to));
    if (int e = rtnl_u32_add_action(f.get(), act.get()); e < 0) return nl_error("tc mirred action", e);
    if (int e = rtnl_cls_add(get(), f.get(), NLM_F_CREATE | NLM_F_EXCL); e < 0)
      return nl_error("adding the redirect filter from interface " + std::to_string(from) + " to " + std::to_string(to), e);
  }
  return {};
}

Status Socket::unmirror(int index) {
  std::unique_ptr<rtnl_qdisc, QdiscFree> q(rtnl_qdisc_alloc());
  rtnl_tc_set_ifindex(TC_CAST(q.get()), index);
  rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_INGRESS);
  rtnl_tc_set_handle(TC_CAST(q.get()), TC_HANDLE(0xffff, 0));
  rtnl_tc_set_kind(TC_CAST(q.get()), "ingress");
  int e = rtnl_qdisc_delete(get(), q.get());
  if (e < 0 && e != -NLE_OBJ_NOTFOUND && e != -NLE_NODEV && e != -NLE_INVAL)
    return nl_error("removing the ingress qdisc of interface " + std::to_string(index), e);
  return {};
}

}  // namespace husk::netlink
