// Pod networking without a VM (needs root): the shim's PodNetwork joins a CNI-style veth in a
// network namespace to a tap, and frames cross both ways between the tap fd (what husk-vmm gets)
// and the veth's peer outside; detach leaves nothing. The agent's network calls configure a
// stand-in guest NIC (found by MAC) in a namespace of its own, and refuse the host's namespace.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "guest-agent/service/agent_service.h"
#include "net/netlink.h"
#include "net/netns.h"
#include "shim/network.h"

namespace husk {
namespace {

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[512];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  if (p) pclose(p);
  return out;
}

constexpr uint16_t kEtherType = 0x88b5;  // local experimental

// A raw socket on `ifname` in namespace `ns` (it stays in that namespace once made).
UniqueFd packet_socket(const std::string& ns, const std::string& ifname) {
  auto nsfd = netlink::open_netns("/var/run/netns/" + ns);
  EXPECT_TRUE(nsfd.ok());
  UniqueFd s;
  (void)netlink::in_netns(nsfd->get(), [&]() -> Status {
    s.reset(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(kEtherType)));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(kEtherType);
    sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    EXPECT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll), 0) << strerror(errno);
    return {};
  });
  return s;
}

bool readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

struct PodNetworkTest : ::testing::Test {
  std::string id = std::to_string(getpid() % 100000);
  std::string pod = "huskpod" + id, out = "huskout" + id, path = "/var/run/netns/" + pod;

  void SetUp() override {
    // What a CNI bridge/ptp plugin leaves: eth0 (a veth) with the pod IP and a default route.
    std::string o = sh("set -e; ip netns add " + pod + "; ip netns add " + out + "; ip link add hv" + id + " type veth peer name hp" + id +
                       "; ip link set hp" + id + " netns " + pod + "; ip link set hv" + id + " netns " + out + "; ip -n " + pod +
                       " link set hp" + id + " name eth0 mtu 1400; ip -n " + pod + " addr add 10.213.0.2/24 dev eth0; ip -n " + pod +
                       " link set eth0 up; ip -n " + pod + " route add default via 10.213.0.1; ip -n " + pod +
                       " neigh add 10.213.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent; ip -n " + out + " addr add 10.213.0.1/24 dev hv" +
                       id + "; ip -n " + out + " link set hv" + id + " up; echo ok");
    ASSERT_NE(o.find("ok"), std::string::npos) << o;
  }
  void TearDown() override { sh("ip netns del " + pod + "; ip netns del " + out); }
};

TEST_F(PodNetworkTest, MirrorsTheVethOntoATapBothWaysAndDetachLeavesNothing) {
  auto net = shim::PodNetwork::attach(path);
  ASSERT_TRUE(net.ok()) << net.error().message;
  ASSERT_EQ(net->links().size(), 1u);
  auto& l = net->links()[0];
  EXPECT_EQ(l.pod.name, "eth0");
  EXPECT_EQ(l.pod.mtu, 1400u);
  EXPECT_EQ(l.tap, "tap0_husk");
  ASSERT_EQ(l.pod.addresses.size(), 1u);
  EXPECT_EQ(l.pod.addresses[0].ip, "10.213.0.2");
  EXPECT_EQ(l.pod.addresses[0].prefix, 24);
  // What the agent is told: the interface, the default route via the gateway, the static neighbour.
  auto ifs = net->interfaces_for_guest();
  ASSERT_EQ(ifs.size(), 1u);
  EXPECT_EQ(ifs[0].mac(), netlink::mac_to_string(l.pod.mac));
  auto routes = net->routes_for_guest();
  bool default_route = false;
  for (const auto& r : routes.routes())
    if (r.destination().empty() && r.gateway() == "10.213.0.1" && r.device() == "eth0") default_route = true;
  EXPECT_TRUE(default_route) << routes.DebugString();
  ASSERT_EQ(routes.neighbours_size(), 1) << routes.DebugString();
  EXPECT_EQ(routes.neighbours(0).address(), "10.213.0.9");
  EXPECT_EQ(routes.neighbours(0).mac(), "02:00:00:00:00:09");
  EXPECT_NE(sh("ip -n " + pod + " link show tap0_husk").find("mtu 1400"), std::string::npos);

  // Outside -> veth -> (redirect) -> tap: what husk-vmm would read, behind a 12-byte vnet header.
  UniqueFd outside = packet_socket(out, "hv" + id);
  uint8_t frame[14 + 32] = {};
  std::memcpy(frame, l.pod.mac.data(), 6);
  std::memset(frame + 6, 0x02, 6);
  frame[12] = kEtherType >> 8, frame[13] = kEtherType & 0xff;
  std::memcpy(frame + 14, "from-outside-to-the-guest", 25);
  ASSERT_EQ(send(outside.get(), frame, sizeof frame, 0), static_cast<ssize_t>(sizeof frame)) << strerror(errno);
  bool seen = false;
  uint8_t got[2048];
  for (int i = 0; i < 20 && !seen && readable(l.tap_fd.get(), 500); ++i) {
    ssize_t n = read(l.tap_fd.get(), got, sizeof got);
    seen = n >= 12 + 14 + 25 && std::memcmp(got + 12 + 14, "from-outside-to-the-guest", 25) == 0;
  }
  EXPECT_TRUE(seen) << "the frame sent to the pod's veth did not come out of the tap";

  // Tap -> (redirect) -> veth -> outside: what the guest sends.
  uint8_t tx[12 + 14 + 32] = {};
  std::memset(tx + 12, 0xff, 6);
  std::memcpy(tx + 12 + 6, l.pod.mac.data(), 6);
  tx[12 + 12] = kEtherType >> 8, tx[12 + 13] = kEtherType & 0xff;
  std::memcpy(tx + 12 + 14, "from-the-guest-to-outside", 25);
  ASSERT_EQ(write(l.tap_fd.get(), tx, sizeof tx), static_cast<ssize_t>(sizeof tx)) << strerror(errno);
  seen = false;
  for (int i = 0; i < 20 && !seen && readable(outside.get(), 500); ++i) {
    ssize_t n = recv(outside.get(), got, sizeof got, 0);
    seen = n >= 14 + 25 && std::memcmp(got + 14, "from-the-guest-to-outside", 25) == 0;
  }
  EXPECT_TRUE(seen) << "the frame written to the tap did not leave through the veth";

  // Detach (what `delete` does after a shim crash, with the tap fd still open, given the
  // namespace's identity the sandbox recorded): no redirect left, then no tap.
  ASSERT_TRUE(shim::PodNetwork::detach(path, net->identity()).ok());
  EXPECT_EQ(sh("tc -n " + pod + " qdisc show dev eth0").find("ingress"), std::string::npos);
  net->stop();
  EXPECT_EQ(sh("ip -n " + pod + " link show tap0_husk").find("mtu"), std::string::npos);
  EXPECT_EQ(sh("tc -n " + pod + " qdisc show dev eth0").find("ingress"), std::string::npos);
  EXPECT_NE(sh("ip -n " + pod + " addr show dev eth0").find("10.213.0.2/24"), std::string::npos);  // CNI's state untouched
}

TEST_F(PodNetworkTest, BadNamespacesAndInterfacesAreClearErrorsAndLeaveNothing) {
  auto missing = shim::PodNetwork::attach("/var/run/netns/husk-does-not-exist");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/var/run/netns/husk-does-not-exist"), std::string::npos) << missing.error().message;
  auto file = shim::PodNetwork::attach("/etc/hostname");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.error().message.find("is not a network namespace"), std::string::npos) << file.error().message;
  // An interface without an address: nothing to give the guest.
  sh("ip -n " + pod + " link add eth1 type veth peer name eth1p");
  auto noaddr = shim::PodNetwork::attach(path);
  ASSERT_FALSE(noaddr.ok());
  EXPECT_NE(noaddr.error().message.find("eth1"), std::string::npos) << noaddr.error().message;
  EXPECT_NE(noaddr.error().message.find(path), std::string::npos) << noaddr.error().message;
  sh("ip -n " + pod + " link del eth1");
  // A bridge cannot be mirrored.
  sh("ip -n " + pod + " link add br9 type bridge; ip -n " + pod + " addr add 10.9.0.1/24 dev br9");
  auto bridge = shim::PodNetwork::attach(path);
  ASSERT_FALSE(bridge.ok());
  EXPECT_NE(bridge.error().message.find("br9 (bridge)"), std::string::npos) << bridge.error().message;
  // Whatever the failure, no tap and no redirect stay behind (eth0 may have been joined first).
  EXPECT_EQ(sh("ip -n " + pod + " link show").find("_husk"), std::string::npos) << sh("ip -n " + pod + " link show");
  EXPECT_EQ(sh("tc -n " + pod + " qdisc show dev eth0").find("ingress"), std::string::npos);
}

TEST_F(PodNetworkTest, ANamespaceDeletedMidCreateIsHeldUntilStopAndItsNameIsNotFollowed) {
  auto net = shim::PodNetwork::attach(path);
  ASSERT_TRUE(net.ok()) << net.error().message;
  // The path goes while the sandbox is being made (a CNI DEL or a kubelet cleanup racing it);
  // another pod's namespace takes the name, its eth0 already joined to its VM (an ingress qdisc).
  sh("ip netns del " + pod + "; ip netns add " + pod + "; ip -n " + pod + " link add eth0 type veth peer name eth0p; tc -n " + pod +
     " qdisc add dev eth0 ingress");
  ASSERT_NE(sh("tc -n " + pod + " qdisc show dev eth0").find("ingress"), std::string::npos);
  // The deleted namespace lives on, held by the shim's fds: the veth's peer is still there.
  EXPECT_NE(sh("ip -n " + out + " link show hv" + id).find("hv" + id), std::string::npos);
  // `delete` after a shim crash has the path and the identity recorded at attach: it sees the
  // path names another namespace now and leaves it alone.
  ASSERT_TRUE(shim::PodNetwork::detach(path, net->identity()).ok());
  EXPECT_NE(sh("tc -n " + pod + " qdisc show dev eth0").find("ingress"), std::string::npos) << "detach followed the path";
  net->stop();
  // Teardown worked on the namespace it attached to, not on whatever the path names now...
  EXPECT_NE(sh("tc -n " + pod + " qdisc show dev eth0").find("ingress"), std::string::npos) << "stop() followed the path";
  // ...and released it: the old namespace went, and its veth pair with it.
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    gone = sh("ip -n " + out + " link show hv" + id).find("does not exist") != std::string::npos;
    if (!gone) usleep(100 * 1000);
  }
  EXPECT_TRUE(gone) << "the deleted namespace is still alive after stop(): " << sh("ip -n " + out + " link show");
}

// The agent's side, in a namespace standing in for the guest: "vg" plays the guest's virtio NIC.
struct AgentNetworkTest : PodNetworkTest {
  agent::Runtime rt{[] {
    agent::RuntimeOptions o;
    o.dry_run = true;
    return o;
  }()};
  agent::AgentService svc{rt, [] {
    agent::ServiceOptions o;
    o.configure_network = true;  // as husk-agent --configure-network
    return o;
  }()};
  agent::AgentService host_svc{rt, agent::ServiceOptions{}};
  std::string guest = "huskguest" + id;
  std::string mac;

  void SetUp() override {
    sh("ip netns add " + guest + "; ip -n " + guest + " link add vg type veth peer name vgp");
    mac = sh("ip -n " + guest + " -o link show vg | grep -o 'link/ether [^ ]*' | cut -d' ' -f2");
    mac.erase(mac.find_last_not_of("\n") + 1);
    ASSERT_EQ(mac.size(), 17u) << mac;
  }
  void TearDown() override { sh("ip netns del " + guest); }

  template <typename F>
  grpc::Status in_guest(F&& f) {
    grpc::Status st;
    auto ns = netlink::open_netns("/var/run/netns/" + guest);
    EXPECT_TRUE(ns.ok());
    (void)netlink::in_netns(ns->get(), [&]() -> husk::Status {
      st = f();
      return {};
    });
    return st;
  }
};

TEST_F(AgentNetworkTest, ConfiguresTheNicFoundByMacAndItsRoutes) {
  grpc::ServerContext ctx;
  agent::v1::Interface want, got;
  want.set_name("eth0");
  want.set_mac(mac);
  want.set_mtu(1400);
  auto* a = want.add_addresses();
  a->set_family(4), a->set_address("10.214.0.2"), a->set_prefix(24);
  auto st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(got.name(), "eth0");
  EXPECT_EQ(got.mtu(), 1400u);
  EXPECT_TRUE(got.up());
  ASSERT_EQ(got.addresses_size(), 1);
  EXPECT_EQ(got.addresses(0).address(), "10.214.0.2");
  // What the kernel says, not what we said.
  std::string shown = sh("ip -n " + guest + " addr show dev eth0");
  EXPECT_NE(shown.find("inet 10.214.0.2/24"), std::string::npos) << shown;
  EXPECT_NE(shown.find("mtu 1400"), std::string::npos) << shown;
  EXPECT_NE(sh("ip -n " + guest + " link show lo").find("UP"), std::string::npos);

  agent::v1::Routes routes, now;
  auto* r = routes.add_routes();
  r->set_family(4), r->set_gateway("10.214.0.1"), r->set_device("eth0");
  auto* n = routes.add_neighbours();
  n->set_family(4), n->set_address("10.214.0.1"), n->set_mac("02:00:00:00:01:01"), n->set_device("eth0");
  st = in_guest([&] { return svc.UpdateRoutes(&ctx, &routes, &now); });
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_NE(sh("ip -n " + guest + " route show default").find("via 10.214.0.1 dev eth0"), std::string::npos);
  EXPECT_NE(sh("ip -n " + guest + " neigh show 10.214.0.1").find("02:00:00:00:01:01"), std::string::npos);
  bool listed = false;
  for (const auto& x : now.routes()) listed |= x.destination().empty() && x.gateway() == "10.214.0.1";
  EXPECT_TRUE(listed) << now.DebugString();
  agent::v1::ListInterfacesRequest lreq;
  agent::v1::Interfaces all;
  st = in_guest([&] { return svc.ListInterfaces(&ctx, &lreq, &all); });
  ASSERT_TRUE(st.ok());
  bool found = false;
  for (const auto& i : all.interfaces()) found |= i.name() == "eth0" && i.mac() == mac;
  EXPECT_TRUE(found) << all.DebugString();
  // Configuring again with another address leaves exactly the new one.
  want.mutable_addresses(0)->set_address("10.214.0.3");
  st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  ASSERT_TRUE(st.ok()) << st.error_message();
  shown = sh("ip -n " + guest + " addr show dev eth0");
  EXPECT_NE(shown.find("10.214.0.3/24"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("10.214.0.2/24"), std::string::npos) << shown;
}

// A guest restored from a template has the template's MAC: the NIC is found by it
// (guest_mac) and given the pod's.
TEST_F(AgentNetworkTest, ARestoredGuestsNicGetsThePodsMac) {
  grpc::ServerContext ctx;
  agent::v1::Interface want, got;
  want.set_name("eth0");
  want.set_mac("02:11:22:33:44:55");
  want.set_guest_mac(mac);
  auto* a = want.add_addresses();
  a->set_family(4), a->set_address("10.214.0.7"), a->set_prefix(24);
  auto st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(got.mac(), "02:11:22:33:44:55");
  std::string shown = sh("ip -n " + guest + " link show dev eth0");
  EXPECT_NE(shown.find("link/ether 02:11:22:33:44:55"), std::string::npos) << shown;
  EXPECT_NE(shown.find("UP"), std::string::npos) << shown;
  // Done once: configuring it again by the pod's MAC alone finds it.
  want.clear_guest_mac();
  st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  EXPECT_TRUE(st.ok()) << st.error_message();
  // A guest MAC no NIC has is an error naming it.
  want.set_guest_mac("02:99:99:99:99:98");
  st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error_message().find("02:99:99:99:99:98"), std::string::npos) << st.error_message();
  want.set_guest_mac("junk");
  st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
}

TEST_F(AgentNetworkTest, BadRequestsAndTheHostsNamespaceAreRefused) {
  grpc::ServerContext ctx;
  agent::v1::Interface want, got;
  want.set_name("eth0");
  want.set_mac(mac);
  // A host agent not told its namespace is its own: refused, nothing touched.
  auto st = in_guest([&] { return host_svc.UpdateInterface(&ctx, &want, &got); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("--configure-network"), std::string::npos) << st.error_message();
  EXPECT_EQ(sh("ip -n " + guest + " link show vg").find("UP"), std::string::npos);
  // No NIC with that MAC.
  want.set_mac("02:99:99:99:99:99");
  st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("02:99:99:99:99:99"), std::string::npos) << st.error_message();
  // Malformed fields name themselves.
  want.set_mac("not-a-mac");
  st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  want.set_mac(mac);
  auto* a = want.add_addresses();
  a->set_family(5), a->set_address("10.0.0.1"), a->set_prefix(8);
  st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("family"), std::string::npos) << st.error_message();
  a->set_family(4), a->set_prefix(33);
  st = in_guest([&] { return svc.UpdateInterface(&ctx, &want, &got); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  agent::v1::Routes routes, now;
  auto* r = routes.add_routes();
  r->set_family(4), r->set_gateway("10.214.0.1"), r->set_device("nosuchdev");
  st = in_guest([&] { return svc.UpdateRoutes(&ctx, &routes, &now); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("nosuchdev"), std::string::npos) << st.error_message();
}

}  // namespace
}  // namespace husk
