// virtio-vsock with Firecracker's hybrid host side (no vhost): guest AF_VSOCK streams map to host
// AF_UNIX streams.
//  - Host-initiated: connect to the VM's socket PATH, send "CONNECT <port>\n"; once the guest
//    accepts, the reply is "OK <host port>\n" and the stream is connected. If the guest does
//    not listen on that port the connection is closed at once (retry until it does).
//  - Guest-initiated to host port P: the VMM connects to "PATH_P".
// Credit-based flow control both ways (spec 5.10.6.3), RST on close, many concurrent streams.
// Everything the guest can make the VMM hold is bounded (as Firecracker's muxer): at most
// kMaxConnections streams, at most kMaxRxQueue control packets waiting for receive buffers (a
// guest that transmits but never posts receive buffers gets its extra replies dropped), at most
// kBufAlloc bytes of host data waiting per stream whatever credit the guest claims, and
// deadlines for handshakes and half-closed streams.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "vmm/virtio/device.h"
#include "vmm/virtio/vsock/packet.h"

namespace husk::virtio {

struct VsockConfig {
  uint64_t guest_cid = 3;
  std::string uds_path;  // empty with listen_fd: guest-initiated streams are refused (RST)
  int listen_fd = -1;    // an inherited listening unix socket (jailed husk-vmm), instead of uds_path
  // Guest-initiated streams to host port P use inherited connected socket fd (once each): how a
  // jailed husk-vmm, which can connect to no path, lets the guest reach the host (the agent
  // tells the shim it is ready on one).
  std::map<uint32_t, int> port_fds = {};
};

class Vsock : public Device {
 public:
  static Result<std::shared_ptr<Vsock>> open(const VsockConfig& cfg);
  Vsock(UniqueFd listener, VsockConfig cfg, std::map<uint32_t, UniqueFd> port_fds = {});
  ~Vsock() override;

  DeviceType type() const override { return kVsock; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256, 256}; }
  uint64_t features() const override { return 0; }
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  Status activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t,
                  Notifier& notifier) override;
  Status process_queue(uint16_t index) override;
  void reset() override;
  void set_host_io(HostIo* io) override;
  Status on_host_accept(uint64_t id, int fd) override;
  Status on_host_read(uint64_t id, std::span<const uint8_t> bytes) override;
  Status on_host_written(uint64_t id, bool ok) override;
  // After a restore every stream the guest had is gone on the host side: the guest is told with
  // a transport reset event (spec 5.10.6.6), as Firecracker does, and closes its sockets.
  void restored() override;
  // A restored guest still holds its streams (until the reset event is handled) on the host
  // ports the snapshotted VM had used: new streams continue after them, or a CONNECT would
  // land on a stale stream and go unanswered.
  void save(snapshot::Writer& w) const override;
  void restore(snapshot::Reader& r) override;

  static constexpr uint32_t kBufAlloc = 256 * 1024;  // what each stream may have in flight to us
  static constexpr size_t kMaxConnections = 1023;
  static constexpr size_t kMaxRxQueue = 256;
  static constexpr uint64_t kConnectLineTimeoutNs = 5'000'000'000;   // host client: "CONNECT n"
  static constexpr uint64_t kRequestTimeoutNs = 10'000'000'000;      // guest: answer a REQUEST
  static constexpr uint64_t kHalfOpenTimeoutNs = 60'000'000'000;     // guest silent after host EOF
  static constexpr uint64_t kResetAckTimeoutNs = 1'000'000'000;      // guest: handle the reset event

  // For tests: streams and packets the device holds, and the clock deadlines are kept by.
  size_t connections() const { return conns_.size() + accepting_.size(); }
  size_t queued_packets() const { return rx_.size(); }
  void set_clock(std::function<uint64_t()> clock) { clock_ = std::move(clock); }

 private:
  enum class State { kAwaitConnect, kConnecting, kEstablished };
  struct Conn {
    uint64_t id = 0;
    UniqueFd fd;
    State state = State::kAwaitConnect;
    uint32_t local_port = 0, peer_port = 0;  // host side, guest side
    std::string line;                        // "CONNECT n" being read
    std::vector<uint8_t> early;              // host bytes after the CONNECT line
    uint32_t peer_buf_alloc = 0, peer_fwd_cnt = 0, tx_cnt = 0;  // towards the guest
    uint32_t rx_cnt = 0, fwd_cnt = 0, credit_sent = 0;           // from the guest
    std::vector<uint8_t> to_host;
    size_t in_flight = 0;
    size_t queued = 0;     // bytes of host data in rx_ not yet in a guest buffer
    uint64_t deadline_ns = 0;  // 0: none (see the timeouts above)
    bool reading = false, host_eof = false, guest_done_sending = false;
  };
  using Key = std::pair<uint32_t, uint32_t>;  // (local_port, peer_port)
  struct RxPacket {
    vsock::Header hdr;
    std::vector<uint8_t> data;
    size_t sent = 0;  // bytes of data already delivered (a packet may span several buffers)
    std::optional<Key> conn;  // the stream whose host data this is (for its `queued` count)
  };

  Status handle_tx(const DescriptorChain& c);
  void handle_packet(const vsock::Header& h, std::vector<uint8_t> data);
  void guest_connect(const vsock::Header& h);
  void push(Conn& c, uint16_t op, uint32_t flags = 0, std::vector<uint8_t> data = {});
  // RST for a packet that named no stream: dropped when the receive queue is full (the guest's
  // socket times out), so a flood of bad packets cannot grow the queue.
  void push_rst(const vsock::Header& to);
  bool rx_full() const { return rx_.size() >= kMaxRxQueue; }
  void pump_host(Conn& c);  // read from the host socket as far as the guest's credit allows
  void flush_to_host(Conn& c);
  void close(const Key& k);
  Conn* by_id(uint64_t id, Key* key);
  Conn& add(const Key& k, Conn c);  // registers a stream under its key and its I/O id
  Status deliver();
  uint32_t peer_credit(const Conn& c) const;
  // Streams past their deadline are reset; asks for the next check while any deadline is set.
  void expire(uint64_t now_ns);
  void schedule_expiry();
  void drop_accepting(uint64_t id);

  UniqueFd listener_;
  VsockConfig cfg_;
  std::map<uint32_t, UniqueFd> port_fds_;  // cfg_.port_fds, owned
  HostIo* io_ = nullptr;
  uint64_t next_id_ = 1;
  static constexpr uint32_t kFirstLocalPort = 1u << 30;  // host ports for host-initiated streams
  uint32_t next_local_port_ = kFirstLocalPort;
  std::map<uint64_t, Conn> accepting_;  // host connections before their CONNECT line
  std::map<Key, Conn> conns_;
  std::map<uint64_t, Key> keys_;  // host I/O id -> stream: callbacks look streams up by id
  std::deque<RxPacket> rx_;
  GuestMemory* mem_ = nullptr;
  std::vector<Queue>* queues_ = nullptr;
  Notifier* notifier_ = nullptr;
  std::function<uint64_t()> clock_;
  bool expiry_scheduled_ = false;
  bool pump_all_ = false;  // the queue was full: pump every stream once it drains
  // After a restore, nothing goes to the guest until it has handled the transport reset (it
  // re-posts the event buffer): a new stream would be reset along with the stale ones.
  bool reset_unacked_ = false;
  uint16_t reset_avail_ = 0;  // the event queue's available index when the reset was sent
  uint64_t reset_deadline_ns_ = 0;
};

}  // namespace husk::virtio
