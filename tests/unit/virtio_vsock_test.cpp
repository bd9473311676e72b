// virtio-vsock (spec 5.10) with a fake driver and fake host I/O: the hybrid handshake, refusal,
// guest misbehaviour.
#include "vmm/virtio/vsock/vsock.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "common/sockets.h"
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
  std::vector<uint16_t> retries;
  void used_buffers() override {}
  void config_changed() override {}
  void retry_after(uint16_t q, uint64_t) override { retries.push_back(q); }
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
  uint64_t now = 1'000'000'000;

  void SetUp() override {
    auto d = Vsock::open(VsockConfig{3, "/tmp/husk-vsock-unit-" + std::to_string(getpid())});
    ASSERT_TRUE(d.ok()) << d.error().message;
    dev = *d;
    dev->set_clock([this] { return now; });
    dev->set_host_io(&io);
    rx.configure(queues[0]), tx.configure(queues[1]), ev.configure(queues[2]);
    ASSERT_TRUE(dev->activate(mem, queues, 0, notifier).ok());
    for (int i = 0; i < 12; ++i) rx.add_chain({{0x40000 + 0x1000ull * static_cast<unsigned>(i), 4096, true}});
  }
  void guest_sends(uint16_t op, uint32_t src_port, uint32_t dst_port, const std::string& data = "",
                   uint64_t src_cid = 3, uint32_t flags = 0, uint32_t fwd_cnt = 0) {
    if (tx_at >= 0x1f0000) tx_at = 0x100000;  // floods reuse the buffers
    Header h{src_cid, 2, src_port, dst_port, static_cast<uint32_t>(data.size()), 1, op, flags, 65536, fwd_cnt};
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

// Establishes a host-initiated stream to guest port `port`; returns (host I/O id, host port).
std::pair<uint64_t, uint32_t> establish(VsockTest& t, uint32_t port) {
  uint64_t id = t.host_connects();
  t.feed(id, "CONNECT " + std::to_string(port) + "\n");
  uint32_t host_port = t.guest_receives().back().first.src_port;
  t.guest_sends(vsock::kOpResponse, port, host_port);
  return {id, host_port};
}

TEST_F(VsockTest, GuestThatNeverPostsReceiveBuffersCannotGrowTheQueue) {
  // The 12 posted buffers go first; then a flood of packets that each want an answer.
  for (int i = 0; i < 3000; ++i) guest_sends(vsock::kOpRw, 1, static_cast<uint32_t>(i), "x");
  EXPECT_LE(dev->queued_packets(), Vsock::kMaxRxQueue);
  for (int i = 0; i < 3000; ++i) guest_sends(vsock::kOpRequest, 2000 + static_cast<uint32_t>(i), 4242);
  EXPECT_LE(dev->queued_packets(), Vsock::kMaxRxQueue);
  EXPECT_EQ(dev->connections(), 0u);
}

TEST_F(VsockTest, CreditRequestsCannotGrowTheQueue) {
  auto [id, port] = establish(*this, 5);
  for (int i = 0; i < 3000; ++i) guest_sends(vsock::kOpCreditRequest, 5, port);
  EXPECT_LE(dev->queued_packets(), Vsock::kMaxRxQueue + 1);
  (void)id;
}

TEST_F(VsockTest, HostDataWaitingForTheGuestIsBoundedWhateverCreditItClaims) {
  auto [id, port] = establish(*this, 5);
  guest_receives();
  // The guest posts no more buffers but keeps claiming it consumed everything (fwd_cnt runs
  // ahead with what was sent): at most kBufAlloc bytes may pile up for it.
  std::string chunk(60000, 'h');
  uint32_t claimed = 0;
  size_t fed = 0;
  for (int i = 0; i < 40; ++i) {
    size_t reads = io.reads.size();
    feed(id, chunk);
    fed += chunk.size();
    claimed += static_cast<uint32_t>(chunk.size());
    guest_sends(vsock::kOpCreditUpdate, 5, port, "", 3, 0, claimed);
    if (io.reads.size() == reads) break;  // the device stopped asking the host for more
  }
  EXPECT_LE(fed, Vsock::kBufAlloc + 12 * 4096 + chunk.size());
}

TEST_F(VsockTest, StreamsAreCapped) {
  for (size_t i = 0; i < Vsock::kMaxConnections + 50; ++i) host_connects();
  EXPECT_EQ(dev->connections(), Vsock::kMaxConnections);
  guest_sends(vsock::kOpRequest, 900, 4242);  // a guest connect beyond the cap: reset
  auto p = guest_receives();
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.back().first.op, vsock::kOpRst);
}

TEST_F(VsockTest, HandshakesThatStallTimeOut) {
  uint64_t silent = host_connects();  // never sends its CONNECT line
  uint64_t unanswered = host_connects();
  feed(unanswered, "CONNECT 77\n");  // the guest never answers the REQUEST
  guest_receives();
  ASSERT_FALSE(notifier.retries.empty());  // the device asked for a deadline check
  EXPECT_EQ(notifier.retries.back(), 2);
  now += Vsock::kConnectLineTimeoutNs + 1;
  ASSERT_TRUE(dev->process_queue(2).ok());
  EXPECT_NE(std::find(io.forgotten.begin(), io.forgotten.end(), silent), io.forgotten.end());
  EXPECT_EQ(std::find(io.forgotten.begin(), io.forgotten.end(), unanswered), io.forgotten.end());
  now += Vsock::kRequestTimeoutNs;
  ASSERT_TRUE(dev->process_queue(2).ok());
  EXPECT_NE(std::find(io.forgotten.begin(), io.forgotten.end(), unanswered), io.forgotten.end());
  auto p = guest_receives();
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.back().first.op, vsock::kOpRst);  // the guest hears the stream is gone
  EXPECT_EQ(dev->connections(), 0u);
}

TEST_F(VsockTest, HalfClosedStreamWithASilentGuestTimesOut) {
  auto [id, port] = establish(*this, 5);
  feed(id, "");  // host EOF: the guest is told SHUTDOWN(send) and may still talk
  now += Vsock::kHalfOpenTimeoutNs / 2;
  guest_sends(vsock::kOpRw, 5, port, "still here");  // activity pushes the deadline back
  now += Vsock::kHalfOpenTimeoutNs / 2 + 1;
  ASSERT_TRUE(dev->process_queue(2).ok());
  EXPECT_EQ(dev->connections(), 1u);
  now += Vsock::kHalfOpenTimeoutNs;
  ASSERT_TRUE(dev->process_queue(2).ok());
  EXPECT_EQ(dev->connections(), 0u);
  EXPECT_EQ(io.forgotten.back(), id);
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

TEST(VsockOpen, AGuestStreamToAHandedOverPortReachesThatSocketOnce) {
  // husk-vmm --vsock 3,fd=N,1023=fd=M: the agent's "ready" reaches the shim's socket.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto listener = listen_unix("/tmp/husk-vsock-port-unit-" + std::to_string(getpid()), 1);
  ASSERT_TRUE(listener.ok());
  VsockConfig cfg{3, "", listener->release()};  // the device takes it
  cfg.port_fds[1023] = sv[1];
  auto d = Vsock::open(cfg);
  ASSERT_TRUE(d.ok()) << d.error().message;
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x200000}}).value();
  testing::FakeQueue rx{mem, 16, 0}, tx{mem, 16, 0x10000}, ev{mem, 16, 0x20000};
  std::vector<Queue> queues{Queue(256), Queue(256), Queue(256)};
  FakeIo io;
  NullNotifier notifier;
  (*d)->set_host_io(&io);
  rx.configure(queues[0]), tx.configure(queues[1]), ev.configure(queues[2]);
  ASSERT_TRUE((*d)->activate(mem, queues, 0, notifier).ok());
  for (int i = 0; i < 4; ++i) rx.add_chain({{0x40000 + 0x1000ull * static_cast<unsigned>(i), 4096, true}});
  auto request = [&](uint32_t src_port, uint64_t at) {
    Header h{3, 2, src_port, 1023, 0, 1, vsock::kOpRequest, 0, 65536, 0};
    (void)mem.write_obj(GuestAddress(at), h);
    tx.add_chain({{at, static_cast<uint32_t>(sizeof h)}});
    ASSERT_TRUE((*d)->process_queue(1).ok());
  };
  request(5000, 0x100000);
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(mem.read_obj<Header>(GuestAddress(0x40000)).value().op, vsock::kOpResponse);
  request(5001, 0x101000);  // the socket was for one stream: a second is refused
  ASSERT_EQ(rx.used_idx(), 2);
  EXPECT_EQ(mem.read_obj<Header>(GuestAddress(0x41000)).value().op, vsock::kOpRst);
  close(sv[0]);
  unlink(("/tmp/husk-vsock-port-unit-" + std::to_string(getpid())).c_str());
}

TEST_F(VsockTest, S5_10_6_6_RestoredDeviceSendsATransportReset) {
  ev.add_chain({{0x30000, 4, true}});
  ev.add_chain({{0x30010, 4, true}});
  dev->restored();
  ASSERT_EQ(ev.used_idx(), 1);
  EXPECT_EQ(ev.used(0).second, 4u);
  EXPECT_EQ(mem.read_obj<uint32_t>(GuestAddress(0x30000)).value(), 0u);  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
}

// A stream the host opens right after a restore must not reach the guest before the guest
// handled the reset, which would reset the new stream too (the client's first Health call was
// cut). The guest re-posting its event buffer (a kick on the event queue) says it has.
TEST_F(VsockTest, HostStreamsWaitUntilTheGuestHandledTheReset) {
  queues[2].event_idx = true;  // the guest kicks only past avail_event: the device must ask
  ev.add_chain({{0x30000, 4, true}});
  ev.add_chain({{0x30010, 4, true}});
  dev->restored();
  EXPECT_EQ(ev.avail_event(), 2);  // a kick at the guest's next post, though one buffer is left
  feed(host_connects(), "CONNECT 1024\n");
  ASSERT_TRUE(dev->process_queue(0).ok());
  EXPECT_TRUE(guest_receives().empty());
  ASSERT_TRUE(dev->process_queue(2).ok());  // a kick with nothing new posted: still waiting
  EXPECT_TRUE(guest_receives().empty());
  ev.add_chain({{0x30000, 4, true}});       // the guest handled the event and re-posts
  ASSERT_TRUE(dev->process_queue(2).ok());
  auto p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first.op, vsock::kOpRequest);
}

TEST_F(VsockTest, AGuestThatNeverTakesTheResetStillGetsItsStreams) {
  ev.add_chain({{0x30000, 4, true}});
  dev->restored();
  feed(host_connects(), "CONNECT 1024\n");
  EXPECT_TRUE(guest_receives().empty());
  now += Vsock::kResetAckTimeoutNs;
  ASSERT_TRUE(dev->process_queue(2).ok());  // the expiry timer
  auto p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first.op, vsock::kOpRequest);
}

// The guest of a restored snapshot still has the snapshotted VM's streams until it handles the
// reset event; a host stream on one of their ports would reach a stale socket, which ignores a
// REQUEST (the client waited out its timeout). Host ports continue where the snapshot left off.
TEST_F(VsockTest, ARestoredDeviceNeverReusesTheSnapshottedVmsHostPorts) {
  std::vector<uint32_t> used;
  for (int i = 0; i < 2; ++i) {
    feed(host_connects(), "CONNECT 1024\n");
    auto p = guest_receives();
    ASSERT_EQ(p.size(), 1u);
    used.push_back(p[0].first.src_port);
  }
  snapshot::Writer w;
  dev->save(w);

  auto copy = Vsock::open(VsockConfig{3, "/tmp/husk-vsock-unit-copy-" + std::to_string(getpid())});
  ASSERT_TRUE(copy.ok()) << copy.error().message;
  snapshot::Reader r(w.bytes());
  (*copy)->restore(r);
  ASSERT_TRUE(r.status().ok()) << r.status().error().message;
  EXPECT_TRUE(r.at_end());
  dev->reset();
  dev = *copy;
  dev->set_clock([this] { return now; });
  dev->set_host_io(&io);
  ASSERT_TRUE(dev->activate(mem, queues, 0, notifier).ok());
  feed(host_connects(), "CONNECT 1024\n");
  auto p = guest_receives();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first.op, vsock::kOpRequest);
  EXPECT_GT(p[0].first.src_port, std::max(used[0], used[1]));

  // A state that would put host streams below their range is refused, not used.
  snapshot::Writer bad;
  bad.u32(5);
  snapshot::Reader rb(bad.bytes());
  dev->restore(rb);
  ASSERT_FALSE(rb.status().ok());
  EXPECT_NE(rb.status().error().message.find("vsock next host port"), std::string::npos) << rb.status().error().message;
}

TEST_F(VsockTest, RestoredDeviceWithoutEventBuffersCarriesOn) {
  dev->restored();  // nothing posted: logged, nothing written
  EXPECT_EQ(ev.used_idx(), 0);
  guest_sends(vsock::kOpRequest, 1234, 5000);  // the device still serves the queues
}

}  // namespace
}  // namespace husk::virtio
