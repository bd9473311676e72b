// virtio-net through the MMIO transport on a real tap (needs root and /dev/net/tun): a frame the
// guest transmits arrives on the host interface; a frame from the host lands in a guest buffer.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "tests/unit/virtio_fake_driver.h"
#include "vmm/virtio/net/net.h"
#include "vmm/virtio/transport/mmio.h"

namespace husk::virtio {
namespace {

struct CountingIrq : Interrupt {
  int count = 0;
  void trigger() override { ++count; }
};

// What Linux's virtio-mmio driver does up to DRIVER_OK: features (VERSION_1 + `features`), rx at
// 0x1000.., tx at 0x11000.. (16 entries each). True when the device is live.
bool drive_to_driver_ok(MmioTransport& t, uint32_t features) {
  auto wr = [&](uint64_t off, uint32_t v) { t.write(off, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&v), 4)); };
  auto rd = [&](uint64_t off) {
    uint32_t v;
    t.read(off, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  };
  wr(0x70, 1), wr(0x70, 3);
  wr(0x24, 1), wr(0x20, 1);  // VERSION_1
  wr(0x24, 0), wr(0x20, features);
  wr(0x70, 11);
  if (!(rd(0x70) & 8)) return false;
  for (uint32_t q = 0; q < 2; ++q) {
    uint64_t base = q * 0x10000;
    wr(0x30, q), wr(0x38, 16);
    wr(0x80, static_cast<uint32_t>(0x1000 + base)), wr(0x90, static_cast<uint32_t>(0x2000 + base));
    wr(0xa0, static_cast<uint32_t>(0x3000 + base)), wr(0x44, 1);
  }
  wr(0x70, 15);
  return (rd(0x70) & 4) && !(rd(0x70) & 0x40);
}

struct NetTapTest : ::testing::Test {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x200000}}).value();
  std::shared_ptr<CountingIrq> irq = std::make_shared<CountingIrq>();
  std::string tap = "husktest" + std::to_string(getpid() % 10000);
  std::shared_ptr<Net> net;
  std::unique_ptr<MmioTransport> t;
  testing::FakeQueue rx{mem, 16, 0}, tx{mem, 16, 0x10000};
  uint32_t driver_features = 1u << 5;  // MAC; tests for offloads add theirs before SetUp

  // The tap interface's offload state as the host stack sees it (ethtool -k).
  bool tap_has(uint32_t cmd) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    ethtool_value v{cmd, 0};
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, tap.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = reinterpret_cast<char*>(&v);
    int r = ioctl(s, SIOCETHTOOL, &ifr);
    close(s);
    EXPECT_EQ(r, 0) << strerror(errno);
    return v.data != 0;
  }

  void wr(uint64_t off, uint32_t v) { t->write(off, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&v), 4)); }
  uint32_t rd(uint64_t off) {
    uint32_t v;
    t->read(off, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void SetUp() override {
    auto n = Net::open(NetConfig{tap, {0x06, 0, 0, 0, 0, 0x42}, {}, {}});
    ASSERT_TRUE(n.ok()) << n.error().message;
    net = *n;
    activate();
  }
  void activate() {
    t = std::make_unique<MmioTransport>(net, mem, irq);
    ASSERT_TRUE(drive_to_driver_ok(*t, driver_features));
    // Bring the interface up so the host stack sees what the guest sends.
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, tap.c_str(), IFNAMSIZ - 1);
    ASSERT_EQ(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
    close(s);
  }
};

TEST_F(NetTapTest, S5_1_6_GuestFrameReachesTheHostInterface) {
  uint8_t mac[6];
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(rd(0x100 + static_cast<uint64_t>(i)));
  EXPECT_EQ(mac[5], 0x42);
  int pkt = socket(AF_PACKET, SOCK_RAW, htons(0x88b5));  // local experimental ethertype
  ASSERT_GE(pkt, 0);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(0x88b5);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(tap.c_str()));
  ASSERT_EQ(bind(pkt, reinterpret_cast<sockaddr*>(&sll), sizeof sll), 0);
  // virtio_net_hdr_v1 (zeros) then an Ethernet frame to broadcast.
  uint8_t frame[12 + 14 + 32] = {};
  std::memset(frame + 12, 0xff, 6);
  std::memcpy(frame + 18, mac, 6);
  frame[24] = 0x88, frame[25] = 0xb5;
  std::memcpy(frame + 26, "husk-frame-from-the-guest", 25);
  (void)mem.write(GuestAddress(0x100000), frame);
  tx.add_chain({{0x100000, sizeof frame}});
  wr(0x50, 1);
  EXPECT_EQ(tx.used_idx(), 1);
  uint8_t got[128];
  timeval tv{2, 0};
  setsockopt(pkt, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = recv(pkt, got, sizeof got, 0);
  ASSERT_EQ(n, 14 + 32);
  EXPECT_EQ(std::memcmp(got + 14, "husk-frame-from-the-guest", 25), 0);
  close(pkt);
}

TEST_F(NetTapTest, HostFrameLandsInAGuestBufferWithOneBuffer) {
  rx.add_chain({{0x120000, 2048, true}});
  wr(0x50, 0);
  uint8_t frame[12 + 60] = {};
  std::memcpy(frame + 12 + 14, "to-the-guest", 12);
  ASSERT_TRUE(net->on_host_data(0, frame).ok());
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(rx.used(0).second, sizeof frame);
  EXPECT_EQ(mem.read_obj<uint16_t>(GuestAddress(0x120000 + 10)).value(), 1);  // num_buffers
  char body[13] = {};
  ASSERT_TRUE(mem.read(GuestAddress(0x120000 + 12 + 14), std::span<uint8_t>(reinterpret_cast<uint8_t*>(body), 12)).ok());
  EXPECT_STREQ(body, "to-the-guest");
  EXPECT_GE(irq->count, 1);
  // No buffer posted: one frame waits and the device asks the loop to stop reading the tap
  // (the kernel's tap queue holds and bounds the rest); it goes once the guest posts a buffer.
  EXPECT_TRUE(t->wants_host_data());
  std::memcpy(frame + 12 + 14, "the-deferred", 12);
  ASSERT_TRUE(net->on_host_data(0, frame).ok());
  EXPECT_EQ(rx.used_idx(), 1);
  EXPECT_FALSE(t->wants_host_data());
  std::memcpy(frame + 12 + 14, "read-anyway!", 12);
  ASSERT_TRUE(net->on_host_data(0, frame).ok());  // read although told to wait: dropped, not queued
  rx.add_chain({{0x121000, 2048, true}});
  rx.add_chain({{0x122000, 2048, true}});
  wr(0x50, 0);
  EXPECT_EQ(rx.used_idx(), 2);
  EXPECT_TRUE(t->wants_host_data());
  ASSERT_TRUE(mem.read(GuestAddress(0x121000 + 12 + 14), std::span<uint8_t>(reinterpret_cast<uint8_t*>(body), 12)).ok());
  EXPECT_STREQ(body, "the-deferred");
}

struct NetOffloadTest : NetTapTest {
  void SetUp() override {
    auto n = Net::open(NetConfig{tap, {0x06, 0, 0, 0, 0, 0x42}, {}, {}});
    ASSERT_TRUE(n.ok()) << n.error().message;
    net = *n;
  }
};

TEST_F(NetOffloadTest, TapOffloadsFollowWhatTheDriverAccepted) {
  // Offered: CSUM, GUEST_CSUM, GUEST_TSO4/6, HOST_TSO4/6.
  t = std::make_unique<MmioTransport>(net, mem, irq);
  wr(0x14, 0);
  EXPECT_EQ(rd(0x10) & 0x1983u, 0x1983u);
  // A driver that takes no offloads: the tap must not hand it partial checksums or segments.
  driver_features = 1u << 5;
  activate();
  EXPECT_FALSE(tap_has(ETHTOOL_GTXCSUM));
  EXPECT_FALSE(tap_has(ETHTOOL_GTSO));
  // Reset, then a driver that takes checksums and TSO for IPv4.
  wr(0x70, 0);
  driver_features = (1u << 5) | (1u << 0) | (1u << 1) | (1u << 7);
  activate();
  EXPECT_TRUE(tap_has(ETHTOOL_GTXCSUM));
  EXPECT_TRUE(tap_has(ETHTOOL_GTSO));
  // A reset takes them away again before any new driver runs.
  wr(0x70, 0);
  EXPECT_FALSE(tap_has(ETHTOOL_GTSO));
  EXPECT_FALSE(tap_has(ETHTOOL_GTXCSUM));
}

TEST(NetInheritedTap, AcceptsAVnetTapFdAndRefusesOtherFds) {
  std::string name = "husktfd" + std::to_string(getpid() % 10000);
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 3);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  ASSERT_EQ(ioctl(fd, TUNSETIFF, &ifr), 0) << strerror(errno);
  auto n = Net::open(NetConfig{"fd=" + std::to_string(fd), {0x06, 0, 0, 0, 0, 1}, {}, {}});
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ((*n)->host_fds(), std::vector<int>{fd});
  EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
  // A tap without vnet headers would mis-frame every packet: refused, naming the interface.
  int plain = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  ifreq ifr2{};
  std::string name2 = name + "p";
  std::strncpy(ifr2.ifr_name, name2.c_str(), IFNAMSIZ - 1);
  ifr2.ifr_flags = IFF_TAP | IFF_NO_PI;
  ASSERT_EQ(ioctl(plain, TUNSETIFF, &ifr2), 0) << strerror(errno);
  auto bad = Net::open(NetConfig{"fd=" + std::to_string(plain), {0x06, 0, 0, 0, 0, 1}, {}, {}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("IFF_VNET_HDR"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find(name2), std::string::npos) << bad.error().message;
  // Not a tap at all.
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  auto notap = Net::open(NetConfig{"fd=" + std::to_string(devnull), {0x06, 0, 0, 0, 0, 1}, {}, {}});
  ASSERT_FALSE(notap.ok());
  EXPECT_NE(notap.error().message.find("not a tap"), std::string::npos) << notap.error().message;
}

}  // namespace
}  // namespace husk::virtio

namespace husk::virtio {
namespace {

// `--net null`: the NIC of a template's VM. The driver sees an ordinary NIC; what it sends is
// returned to it and goes nowhere, and there is no host descriptor to read.
TEST(NetNullBackend, IsANicWithNoHostSide) {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x200000}}).value();
  auto irq = std::make_shared<CountingIrq>();
  auto n = Net::open(NetConfig{kNullBackend, {0x06, 0, 0, 0, 0, 0x01}, {}, {}});
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_TRUE((*n)->host_fds().empty());
  MmioTransport t(*n, mem, irq);
  auto wr = [&](uint64_t off, uint32_t v) { t.write(off, std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&v), 4)); };
  auto rd = [&](uint64_t off) {
    uint32_t v;
    t.read(off, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  };
  testing::FakeQueue rx{mem, 16, 0}, tx{mem, 16, 0x10000};
  // MAC, CSUM, GUEST_TSO4: offloads need no tap.
  ASSERT_TRUE(drive_to_driver_ok(t, (1u << 5) | (1u << 0) | (1u << 7)));
  EXPECT_EQ(rd(0x100 + 5) & 0xff, 0x01u);
  uint8_t frame[12 + 60] = {};
  (void)mem.write(GuestAddress(0x100000), frame);
  tx.add_chain({{0x100000, sizeof frame}});
  wr(0x50, 1);
  EXPECT_EQ(tx.used_idx(), 1);
  EXPECT_FALSE(rd(0x70) & 0x40);
}

}  // namespace
}  // namespace husk::virtio
