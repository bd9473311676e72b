// virtio-vsock (spec 5.10) with a fake driver and fake host I/O: the hybrid handshake, refusal,
// guest misbehaviour.
#include "vmm/virtio/vsock/vsock.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/unit/virtio_fake_driver.h"

namespace husk::virtio {
namespace {

using testing::FakeQueue;
using vsock::Header;

struct FakeIo : HostIo {
  std::vector<uint64_t> reads, forgotten;
  std::vector<std::string> writes;
  void accept(uint64_t, int) override {}
  void read(uint64_t id, int, size_t) override { reads.push_back(id); }
  void write(uint64_t, int, std::vector<uint8_t> b) override { writes.emplace_back(b.begin(), b.end()); }
  void forget(uint64_t id) override { forgotten.push_back(id); }
};
struct NullNotifier : Notifier {
  void used_buffers() override {}
  void config_changed() override {}
  void retry_after(uint16_t, uint64_t) override {}
};

struct VsockTest : ::testing::Test {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x200000}}).value();
  FakeQueue rx{mem, 16, 0}, tx{mem, 16, 0x10000}, ev{mem, 16, 0x20000};
  std::vector<Queue> queues{Queue(256), Queue(256), Queue(256)};
  FakeIo io;
  NullNotifier notifier;
  std::shared_ptr<Vsock> dev;
  uint64_t tx_at = 0x100000;
  uint16_t rx_seen = 0;

  void SetUp() override {
    auto d = Vsock::open(VsockConfig{3, "/tmp/husk-vsock-unit-" + std::to_string(getpid())});
    ASSERT_TRUE(d.ok()) << d.error().message;
    dev = *d;
    dev->set_host_io(&io);
    rx.configure(queues[0]), tx.configure(queues[1]), ev.configure(queues[2]);
    ASSERT_TRUE(dev->activate(mem, queues, 0, notifier).ok());
    for (int i = 0; i < 12; ++i) rx.add_chain({{0x40000 + 0x1000ull * static_cast<unsigned>(i), 4096, true}});
  }
  void guest_sends(uint16_t op, uint32_t src_port, uint32_t dst_port, const std::string& data = "",
                   uint64_t src_cid = 3, uint32_t flags = 0) {
    Header h{src_cid, 2, src_port, dst_port, static_cast<uint32_t>(data.size()), 1, op, flags, 65536, 0};
    (void)mem.write_obj(GuestAddress(tx_at), h);
    (void)mem.write(GuestAddress(tx_at + sizeof h),
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
    tx.add_chain({{tx_at, static_cast<uint32_t>(sizeof h + data.size())}});
    tx_at += 0x1000;
    ASSERT_TRUE(dev->process_queue(1).ok());
  }
  // Packets the device gave the guest since the last call.
  std::vector<std::pair<Header, std::string>> guest_receives() {
    std::vector<std::pair<Header, std::string>> out;
    for (; rx_seen < rx.used_idx(); ++rx_seen) {
      auto [head, len] = rx.used(rx_seen);
      uint64_t at = 0x40000 + 0x1000ull * head;
      Header h = mem.read_obj<Header>(GuestAddress(at)).value();
      std::string data(len - sizeof h, '\0');
      (void)mem.read(GuestAddress(at + sizeof h), std::span<uint8_t>(reinterpret_cast<uint8_t*>(data.data()), data.size()));
      out.emplace_back(h, data);
    }
    return out;
  }
  std::string feed(uint64_t id, const std::string& s) {
    auto st = dev->on_host_read(id, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
    return st.ok() ? "" : st.error().message;
  }
  uint64_t host_connects() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    EXPECT_TRUE(dev->on_host_accept(100, sv[0]).ok());
    return io.reads.back();
  }
};

TEST_F(VsockTest, S5_10_HostConnectHandshakeThenData) {
  uint64_t id = host_connects();
  feed(id, "CONNECT 1234\nearly");
  auto p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first.op, vsock::kOpRequest);
  EXPECT_EQ(p[0].first.dst_port, 1234u);
  EXPECT_EQ(p[0].first.dst_cid, 3u);
  uint32_t host_port = p[0].first.src_port;
  EXPECT_GE(host_port, 1u << 30);
  guest_sends(vsock::kOpResponse, 1234, host_port);
  ASSERT_FALSE(io.writes.empty());
  EXPECT_EQ(io.writes[0], "OK " + std::to_string(host_port) + "\n");
  p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first.op, vsock::kOpRw);
  EXPECT_EQ(p[0].second, "early");
  guest_sends(vsock::kOpRw, 1234, host_port, "from guest");
  ASSERT_TRUE(dev->on_host_written(id, true).ok());  // the OK line went out
  ASSERT_EQ(io.writes.size(), 2u);
  EXPECT_EQ(io.writes[1], "from guest");
}

// A host client that connects while the guest driver is still probing (the shim dials the agent
// right after starting the VMM): its REQUEST waits, and goes out when the driver sets
// DRIVER_OK with receive buffers already posted — the guest will not kick rx again until it
// consumed one, so activation itself must deliver.
TEST_F(VsockTest, HostConnectBeforeDriverOkIsDeliveredOnActivation) {
  dev->reset();
  uint64_t id = host_connects();
  feed(id, "CONNECT 1024\n");
  EXPECT_TRUE(guest_receives().empty());
  ASSERT_TRUE(dev->activate(mem, queues, 0, notifier).ok());
  auto p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first.op, vsock::kOpRequest);
  EXPECT_EQ(p[0].first.dst_port, 1024u);
}

TEST_F(VsockTest, GuestRefusalClosesTheHostConnection) {
  uint64_t id = host_connects();
  feed(id, "CONNECT 99\n");
  auto p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  guest_sends(vsock::kOpRst, 99, p[0].first.src_port);
  ASSERT_FALSE(io.forgotten.empty());
  EXPECT_EQ(io.forgotten.back(), id);
  EXPECT_TRUE(io.writes.empty());  // no OK line
}

TEST_F(VsockTest, MalformedHandshakeIsDropped) {
  uint64_t id = host_connects();
  feed(id, "HELLO\n");
  EXPECT_EQ(io.forgotten.back(), id);
  EXPECT_TRUE(guest_receives().empty());
  uint64_t id2 = host_connects();
  feed(id2, std::string(40, 'x'));  // no newline within the limit
  EXPECT_EQ(io.forgotten.back(), id2);
}

TEST_F(VsockTest, GuestConnectToAnAbsentHostPortIsReset) {
  guest_sends(vsock::kOpRequest, 700, 4242);
  auto p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first.op, vsock::kOpRst);
  EXPECT_EQ(p[0].first.dst_port, 700u);
}

TEST_F(VsockTest, HostileGuestPacketsAreAnsweredOrDropped) {
  guest_sends(vsock::kOpRw, 1, 2, "no such stream");
  auto p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first.op, vsock::kOpRst);
  guest_sends(77, 1, 2);  // unknown op
  EXPECT_EQ(guest_receives().size(), 1u);
  guest_sends(vsock::kOpRequest, 1, 2, "", /*src_cid=*/9);  // spoofed source: dropped silently
  EXPECT_TRUE(guest_receives().empty());
  guest_sends(vsock::kOpRst, 1, 2);  // RST for nothing: no answer
  EXPECT_TRUE(guest_receives().empty());
}

TEST_F(VsockTest, CreditOverrunResetsTheStream) {
  uint64_t id = host_connects();
  feed(id, "CONNECT 5\n");
  uint32_t port = guest_receives()[0].first.src_port;
  guest_sends(vsock::kOpResponse, 5, port);
  // The OK line is in flight and never completes: guest data piles up unforwarded.
  std::string chunk(60000, 'a');
  for (int i = 0; i < 5; ++i) guest_sends(vsock::kOpRw, 5, port, chunk);  // 300 KB > 256 KiB credit
  auto p = guest_receives();
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.back().first.op, vsock::kOpRst);
}

TEST(VsockPacket, HeaderChecks) {
  Header ok{3, 2, 1, 2, 10, 1, vsock::kOpRw, 0, 0, 0};
  EXPECT_TRUE(vsock::check_tx_header(ok, 3, 10).ok());
  EXPECT_FALSE(vsock::check_tx_header(ok, 3, 9).ok());   // payload beyond the buffer
  Header big = ok;
  big.len = vsock::kMaxPayload + 1;
  EXPECT_FALSE(vsock::check_tx_header(big, 3, ~0ull).ok());
  Header dgram = ok;
  dgram.type = 2;
  EXPECT_FALSE(vsock::check_tx_header(dgram, 3, 10).ok());
  Header data_on_request = ok;
  data_on_request.op = vsock::kOpRequest;
  EXPECT_FALSE(vsock::check_tx_header(data_on_request, 3, 10).ok());
  Header to_guest = ok;
  to_guest.dst_cid = 3;
  EXPECT_FALSE(vsock::check_tx_header(to_guest, 3, 10).ok());
}

TEST(VsockOpen, RejectsReservedCidsAndBadPaths) {
  EXPECT_FALSE(Vsock::open(VsockConfig{2, "/tmp/x.sock"}).ok());
  EXPECT_FALSE(Vsock::open(VsockConfig{3, ""}).ok());
  EXPECT_FALSE(Vsock::open(VsockConfig{3, std::string(200, 'p')}).ok());
  EXPECT_FALSE(Vsock::open(VsockConfig{3, "/nonexistent-dir/v.sock"}).ok());
}

}  // namespace
}  // namespace husk::virtio
