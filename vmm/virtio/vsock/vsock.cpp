#include "vmm/virtio/vsock/vsock.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "common/inherited_fd.h"
#include "common/sockets.h"
#include "vmm/virtio/chain_io.h"
#include "vmm/virtio/rate_limiter.h"

namespace husk::virtio {
namespace {
using namespace vsock;
enum : uint16_t { kRxQueue = 0, kTxQueue = 1, kEventQueue = 2 };
constexpr uint64_t kExpiryPeriodNs = 1'000'000'000;
constexpr size_t kMaxConnectLine = 32;

}  // namespace

Result<std::shared_ptr<Vsock>> Vsock::open(const VsockConfig& cfg) {
  if (cfg.guest_cid <= kHostCid || cfg.guest_cid >= 0xffffffffull)
    return make_error("vsock guest CID %llu is reserved", (unsigned long long)cfg.guest_cid);
  std::map<uint32_t, UniqueFd> ports;
  for (const auto& [port, n] : cfg.port_fds) {
    auto fd = take_inherited_fd(n);
    if (!fd) return fd.error().wrap("vsock port " + std::to_string(port) + ": ");
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd->get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
      return make_error(ErrorCode::kInvalidArgument, "vsock port %u: fd=%d is not a stream socket", port, n);
    ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
    ports[port] = std::move(fd.value());
  }
  if (cfg.listen_fd >= 0) {
    auto fd = take_inherited_fd(cfg.listen_fd);
    if (!fd) return fd.error().wrap("vsock: ");
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd->get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
      return make_error(ErrorCode::kInvalidArgument, "vsock: fd=%d is not a listening socket", cfg.listen_fd);
    ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
    return std::make_shared<Vsock>(std::move(fd.value()), cfg, std::move(ports));
  }
  auto fd = listen_unix(cfg.uds_path, 128, /*nonblocking=*/true);  // replaces a stale socket from an earlier VM
  if (!fd) return make_error("vsock: %s", fd.error().message.c_str());
  return std::make_shared<Vsock>(std::move(fd.value()), cfg, std::move(ports));
}

Vsock::Vsock(UniqueFd listener, VsockConfig cfg, std::map<uint32_t, UniqueFd> port_fds)
    : listener_(std::move(listener)), cfg_(std::move(cfg)), port_fds_(std::move(port_fds)), clock_(monotonic_ns) {}

Vsock::~Vsock() {
  if (!cfg_.uds_path.empty()) ::unlink(cfg_.uds_path.c_str());
}

void Vsock::read_config(uint64_t offset, std::span<uint8_t> data) {
  uint8_t cfg[8];
  std::memcpy(cfg, &cfg_.guest_cid, sizeof cfg);
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < sizeof cfg ? cfg[offset + i] : 0;
}

void Vsock::set_host_io(HostIo* io) {
  io_ = io;
  io_->accept(next_id_++, listener_.get());
}

Status Vsock::activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t, Notifier& notifier) {
  if (queues.size() < 3 || !queues[kRxQueue].ready || !queues[kTxQueue].ready)
    return make_error("virtio-vsock: rx and tx queues must be ready");
  mem_ = &mem;
  queues_ = &queues;
  notifier_ = &notifier;
  // Handshake deadlines count from now: a guest that took long to boot did not ignore them.
  uint64_t now = clock_();
  for (auto& [k, c] : conns_)
    if (c.state == State::kConnecting) c.deadline_ns = now + kRequestTimeoutNs;
  schedule_expiry();
  // Host CONNECTs that arrived while the driver was probing are waiting in rx_, and the guest
  // posted its receive buffers (and kicked) before DRIVER_OK, when the kick was ignored: it will
  // not kick again until it consumed one, so deliver now or the handshake waits forever.
  return deliver();
}

void Vsock::reset() {
  // The guest's sockets are gone: drop every host stream with them.
  for (auto& [id, c] : accepting_) io_->forget(id);
  accepting_.clear();
  while (!conns_.empty()) close(conns_.begin()->first);
  rx_.clear();
  mem_ = nullptr, queues_ = nullptr, notifier_ = nullptr;
  expiry_scheduled_ = pump_all_ = reset_unacked_ = false;
}

uint32_t Vsock::peer_credit(const Conn& c) const {
  uint32_t in_flight = c.tx_cnt - c.peer_fwd_cnt;  // wraps like the spec's counters
  return in_flight >= c.peer_buf_alloc ? 0 : c.peer_buf_alloc - in_flight;
}

void Vsock::push(Conn& c, uint16_t op, uint32_t flags, std::vector<uint8_t> data) {
  Header h{};
  h.src_cid = kHostCid;
  h.dst_cid = cfg_.guest_cid;
  h.src_port = c.local_port;
  h.dst_port = c.peer_port;
  h.len = static_cast<uint32_t>(data.size());
  h.type = kTypeStream;
  h.op = op;
  h.flags = flags;
  h.buf_alloc = kBufAlloc;
  h.fwd_cnt = c.fwd_cnt;
  c.credit_sent = c.fwd_cnt;
  c.tx_cnt += h.len;
  c.queued += data.size();
  rx_.push_back(RxPacket{h, std::move(data), 0, Key{c.local_port, c.peer_port}});
}

void Vsock::push_rst(const Header& to) {
  Header h{};
  h.src_cid = kHostCid;
  h.dst_cid = cfg_.guest_cid;
  h.src_port = to.dst_port;
  h.dst_port = to.src_port;
  h.type = kTypeStream;
  h.op = kOpRst;
  if (rx_full()) {
    LOG_WARN_RATELIMITED("vsock: guest posts no receive buffers: dropping a reset");
    return;
  }
  rx_.push_back(RxPacket{h, {}, 0, std::nullopt});
}

void Vsock::close(const Key& k) {
  auto it = conns_.find(k);
  if (it == conns_.end()) return;
  if (io_) io_->forget(it->second.id);
  keys_.erase(it->second.id);
  conns_.erase(it);  // closes the host socket
}

Vsock::Conn& Vsock::add(const Key& k, Conn c) {
  keys_[c.id] = k;
  return conns_.emplace(k, std::move(c)).first->second;
}

Vsock::Conn* Vsock::by_id(uint64_t id, Key* key) {
  auto k = keys_.find(id);
  if (k == keys_.end()) return nullptr;
  *key = k->second;
  return &conns_.at(k->second);
}

Status Vsock::on_host_accept(uint64_t, int fd) {
  if (connections() >= kMaxConnections) {
    LOG_WARN_RATELIMITED("vsock: %zu streams open: refusing a host connection", connections());
    ::close(fd);
    return {};
  }
  Conn c;
  c.fd.reset(fd);
  c.id = next_id_++;
  c.deadline_ns = clock_() + kConnectLineTimeoutNs;
  uint64_t id = c.id;
  accepting_.emplace(id, std::move(c));
  io_->read(id, fd, kMaxConnectLine);
  schedule_expiry();
  return {};
}

void Vsock::drop_accepting(uint64_t id) {
  io_->forget(id);
  accepting_.erase(id);  // closes the host socket
}

void Vsock::pump_host(Conn& c) {
  if (c.reading || c.host_eof || c.state != State::kEstablished) return;
  if (rx_full()) {  // resumes once the guest takes packets
    pump_all_ = true;
    return;
  }
  // Credit as the guest tells it, but never more than kBufAlloc undelivered per stream: a
  // guest that claims to have read what it never received must not make us buffer more.
  if (c.queued >= kBufAlloc) return;  // resumes as its packets are delivered
  uint32_t credit = std::min<uint32_t>(peer_credit(c), static_cast<uint32_t>(kBufAlloc - c.queued));
  if (credit == 0) return;  // resumes when the guest's credit update arrives
  c.reading = true;
  io_->read(c.id, c.fd.get(), std::min<uint32_t>(credit, kMaxPayload));
}

void Vsock::flush_to_host(Conn& c) {
  if (c.in_flight || c.to_host.empty()) return;
  c.in_flight = c.to_host.size();
  io_->write(c.id, c.fd.get(), std::move(c.to_host));
  c.to_host.clear();
}

Status Vsock::on_host_read(uint64_t id, std::span<const uint8_t> bytes) {
  if (auto a = accepting_.find(id); a != accepting_.end()) {
    Conn& c = a->second;
    if (bytes.empty()) {  // the host client gave up before finishing its CONNECT line
      drop_accepting(id);
      return {};
    }
    size_t nl = 0;
    while (nl < bytes.size() && bytes[nl] != '\n') ++nl;
    c.line.append(reinterpret_cast<const char*>(bytes.data()), nl);
    unsigned port = 0;
    char tail;
    bool done = nl < bytes.size();
    if (!done && c.line.size() < kMaxConnectLine) {
      io_->read(id, c.fd.get(), kMaxConnectLine);
      return {};
    }
    if (!done || std::sscanf(c.line.c_str(), "CONNECT %u%c", &port, &tail) != 1) {
      LOG_WARN_RATELIMITED("vsock: bad handshake from a host client: '%.32s'", c.line.c_str());
      drop_accepting(id);
      return {};
    }
    c.early.assign(bytes.begin() + static_cast<std::ptrdiff_t>(nl) + 1, bytes.end());
    c.peer_port = port;
    c.local_port = next_local_port_;
    next_local_port_ = next_local_port_ == UINT32_MAX ? kFirstLocalPort : next_local_port_ + 1;
    c.state = State::kConnecting;
    c.deadline_ns = clock_() + kRequestTimeoutNs;
    Conn& added = add(Key{c.local_port, c.peer_port}, std::move(c));
    accepting_.erase(a);
    push(added, kOpRequest);
    return deliver();
  }
  Key k;
  Conn* c = by_id(id, &k);
  if (!c) return {};  // closed meanwhile
  c->reading = false;
  if (bytes.empty()) {
    // The host half-closed: no more data comes from it, but it may still read what the guest
    // sends (an echo's tail), so only SEND is shut down. The stream ends when both sides are done.
    c->host_eof = true;
    push(*c, kOpShutdown, kShutdownSend);
    // Half-closed: the guest may still send, but a guest that stays silent does not keep
    // the stream (and the host peer's socket) for ever.
    if (!c->guest_done_sending) c->deadline_ns = clock_() + kHalfOpenTimeoutNs;
    schedule_expiry();
    return deliver();
  }
  push(*c, kOpRw, 0, std::vector<uint8_t>(bytes.begin(), bytes.end()));
  pump_host(*c);
  return deliver();
}

Status Vsock::on_host_written(uint64_t id, bool ok) {
  Key k;
  Conn* c = by_id(id, &k);
  if (!c) return {};
  if (!ok) {  // the host reader went away
    Header h{};
    h.src_port = c->peer_port, h.dst_port = c->local_port;
    push_rst(h);
    close(k);
    return deliver();
  }
  c->fwd_cnt += static_cast<uint32_t>(c->in_flight);
  c->in_flight = 0;
  flush_to_host(*c);
  if (!c->in_flight && c->guest_done_sending) {
    ::shutdown(c->fd.get(), SHUT_WR);
    if (c->host_eof) {
      push(*c, kOpRst);
      close(k);
      return deliver();
    }
  }
  // Tell the guest about freed buffer space before it runs dry (it also asks when it does).
  if (c->fwd_cnt - c->credit_sent >= kBufAlloc / 4) {
    push(*c, kOpCreditUpdate);
    return deliver();
  }
  return {};
}

void Vsock::guest_connect(const Header& h) {
  Key k{h.dst_port, h.src_port};
  if (conns_.count(k) || connections() >= kMaxConnections || rx_full()) return push_rst(h);
  UniqueFd fd;
  if (auto it = port_fds_.find(h.dst_port); it != port_fds_.end()) {
    fd = std::move(it->second);  // one stream per handed-over socket
    port_fds_.erase(it);
  } else if (!cfg_.uds_path.empty()) {
    // Non-blocking: a unix connect completes at once, or fails with EAGAIN when the listener's
    // backlog is full; it never holds the event loop.
    auto conn = connect_unix(cfg_.uds_path + "_" + std::to_string(h.dst_port), /*nonblocking=*/true);
    if (!conn) return push_rst(h);
    fd = std::move(conn.value());
  } else {
    return push_rst(h);
  }
  Conn c;
  c.id = next_id_++;
  c.fd = std::move(fd);
  c.state = State::kEstablished;
  c.local_port = h.dst_port;
  c.peer_port = h.src_port;
  c.peer_buf_alloc = h.buf_alloc;
  c.peer_fwd_cnt = h.fwd_cnt;
  Conn& added = add(k, std::move(c));
  push(added, kOpResponse);
  pump_host(added);
}

void Vsock::handle_packet(const Header& h, std::vector<uint8_t> data) {
  Key k{h.dst_port, h.src_port};
  auto it = conns_.find(k);
  if (it == conns_.end()) {
    if (h.op == kOpRequest) return guest_connect(h);
    if (h.op != kOpRst) push_rst(h);  // nothing by that name here
    return;
  }
  Conn& c = it->second;
  c.peer_buf_alloc = h.buf_alloc;
  c.peer_fwd_cnt = h.fwd_cnt;
  if (c.host_eof && c.deadline_ns) c.deadline_ns = clock_() + kHalfOpenTimeoutNs;  // still talking
  switch (h.op) {
    case kOpResponse:
      if (c.state != State::kConnecting) return push_rst(h), close(k);
      c.state = State::kEstablished;
      c.deadline_ns = 0;
      {
        std::string ok = "OK " + std::to_string(c.local_port) + "\n";
        c.to_host.insert(c.to_host.begin(), ok.begin(), ok.end());
        // The OK line is not guest data: it must not count against the guest's credit.
        c.fwd_cnt -= static_cast<uint32_t>(ok.size());
      }
      if (!c.early.empty()) push(c, kOpRw, 0, std::move(c.early));
      flush_to_host(c);
      pump_host(c);
      return;
    case kOpRst:
      // Before RESPONSE this is the guest refusing a host CONNECT: closing tells the client.
      return close(k);
    case kOpRw:
      if (c.state != State::kEstablished) return push_rst(h), close(k);
      if (c.rx_cnt - c.fwd_cnt + data.size() > kBufAlloc) {
        LOG_WARN_RATELIMITED("vsock: guest port %u overran its credit: resetting", c.peer_port);
        return push_rst(h), close(k);
      }
      c.rx_cnt += static_cast<uint32_t>(data.size());
      c.to_host.insert(c.to_host.end(), data.begin(), data.end());
      return flush_to_host(c);
    case kOpShutdown:
      if (h.flags & kShutdownSend) c.guest_done_sending = true, c.deadline_ns = 0;
      if (c.guest_done_sending && !c.in_flight && c.to_host.empty()) {
        ::shutdown(c.fd.get(), SHUT_WR);
        if (c.host_eof || (h.flags & kShutdownRcv)) {
          push(c, kOpRst);
          close(k);
        }
      }
      return;
    case kOpCreditRequest:
      // Dropped when the guest posts no receive buffers; it asks again.
      if (!rx_full()) push(c, kOpCreditUpdate);
      return;
    case kOpCreditUpdate:
      pump_host(c);
      return;
    default:
      return push_rst(h), close(k);
  }
}

Status Vsock::handle_tx(const DescriptorChain& chain) {
  Header h;
  auto hb = std::span<uint8_t>(reinterpret_cast<uint8_t*>(&h), sizeof h);
  if (chain.readable_bytes() < sizeof h || !copy_from_chain(*mem_, chain.readable, 0, hb)) {
    LOG_WARN_RATELIMITED("vsock: dropping a transmit buffer without a header");
    return {};
  }
  if (auto s = check_tx_header(h, cfg_.guest_cid, chain.readable_bytes() - sizeof h); !s) {
    LOG_WARN_RATELIMITED("%s", s.error().message.c_str());
    if (h.op != kOpRst && h.src_cid == cfg_.guest_cid) push_rst(h);
    return {};
  }
  std::vector<uint8_t> data(h.len);
  if (h.len && !copy_from_chain(*mem_, chain.readable, sizeof h, data)) return {};
  handle_packet(h, std::move(data));
  return {};
}

void Vsock::schedule_expiry() {
  if (!notifier_ || expiry_scheduled_) return;
  bool any = !accepting_.empty() || reset_unacked_;
  for (const auto& [k, c] : conns_) any = any || c.deadline_ns != 0;
  if (!any) return;
  expiry_scheduled_ = true;
  notifier_->retry_after(kEventQueue, kExpiryPeriodNs);
}

void Vsock::expire(uint64_t now) {
  for (auto it = accepting_.begin(); it != accepting_.end();) {
    auto next = std::next(it);
    if (it->second.deadline_ns <= now) {
      LOG_WARN_RATELIMITED("vsock: a host client sent no CONNECT line in time: closing it");
      drop_accepting(it->first);
    }
    it = next;
  }
  std::vector<Key> expired;
  for (const auto& [k, c] : conns_)
    if (c.deadline_ns && c.deadline_ns <= now) expired.push_back(k);
  for (const auto& k : expired) {
    LOG_WARN_RATELIMITED("vsock: stream to guest port %u timed out (%s): resetting", k.second,
                         conns_.at(k).state == State::kConnecting ? "no answer to a connect" : "half-closed and silent");
    push(conns_.at(k), kOpRst);  // per stream, so bounded: not subject to the queue limit
    close(k);
  }
}

void Vsock::save(snapshot::Writer& w) const { w.u32(next_local_port_); }

void Vsock::restore(snapshot::Reader& r) {
  uint32_t next = r.u32("vsock next host port");
  if (r.ok() && next < kFirstLocalPort) return r.fail("vsock next host port", "is below the range host streams use");
  if (r.ok()) next_local_port_ = next;
}

void Vsock::restored() {
  if (!queues_ || !(*queues_)[kEventQueue].ready) return;
  Queue& q = (*queues_)[kEventQueue];
  auto chain = q.pop(*mem_);
  if (!chain || !*chain) {
    LOG_WARN("vsock: no event buffer for the transport reset after restore: the guest keeps stale streams");
    return;
  }
  const uint32_t kTransportReset = 0;  // struct virtio_vsock_event { le32 id; }
  auto& c = **chain;
  auto fail = [](const Error& e) { LOG_WARN("vsock: transport reset after restore: %s", e.message.c_str()); };
  Status s = copy_to_chain(*mem_, c.writable, 0, {reinterpret_cast<const uint8_t*>(&kTransportReset), 4});
  if (s) s = q.add_used(*mem_, c.head, 4);
  if (!s) return fail(s.error());
  // The guest re-posts the buffer once it handled the event: that kick is the acknowledgement.
  auto idx = q.avail_index(*mem_);
  if (!idx) return fail(idx.error());
  s = q.notify_on_next_post(*mem_);
  if (s) s = notify_used(q, *mem_, *notifier_);
  if (!s) return fail(s.error());
  reset_unacked_ = true;
  reset_avail_ = *idx;
  reset_deadline_ns_ = clock_() + kResetAckTimeoutNs;
  schedule_expiry();
}

Status Vsock::process_queue(uint16_t index) {
  if (!queues_) return {};
  if (index == kEventQueue) {  // our expiry timer, or the guest re-posting event buffers
    expiry_scheduled_ = false;
    if (reset_unacked_) {
      auto idx = (*queues_)[kEventQueue].avail_index(*mem_);
      if (!idx || *idx != reset_avail_) {
        reset_unacked_ = false;
      } else if (clock_() >= reset_deadline_ns_) {
        LOG_WARN("vsock: the restored guest did not take its transport reset event in time: delivering anyway");
        reset_unacked_ = false;
      }
    }
    expire(clock_());
    schedule_expiry();
  }
  if (index == kTxQueue) {
    auto s = serve_queue((*queues_)[kTxQueue], *mem_, *notifier_,
                         [this](const DescriptorChain& c) -> Result<uint32_t> {
                           if (auto st = handle_tx(c); !st) return st.error();
                           return uint32_t{0};
                         });
    if (!s) return s;
  }
  return deliver();  // new rx buffers, or replies to what the guest just sent
}

Status Vsock::deliver() {
  if (!queues_ || reset_unacked_) return {};
  Queue& rx = (*queues_)[kRxQueue];
  bool used = false;
  while (!rx_.empty()) {
    auto chain = rx.pop(*mem_);
    if (!chain) return chain.error();
    if (!*chain) break;  // no buffers: the guest kicks rx when it posts more
    const auto& c = **chain;
    RxPacket& p = rx_.front();
    uint32_t written = 0;
    if (c.writable_bytes() >= sizeof(Header)) {
      uint64_t room = c.writable_bytes() - sizeof(Header);
      Header h = p.hdr;
      size_t n = std::min<size_t>(p.data.size() - p.sent, room);
      h.len = static_cast<uint32_t>(n);
      auto hb = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&h), sizeof h);
      if (auto s = copy_to_chain(*mem_, c.writable, 0, hb); !s) return s;
      if (n) {
        if (auto s = copy_to_chain(*mem_, c.writable, sizeof h, std::span<const uint8_t>(p.data.data() + p.sent, n)); !s)
          return s;
      }
      written = static_cast<uint32_t>(sizeof h + n);
      p.sent += n;
      if (n && p.conn) {
        if (auto it = conns_.find(*p.conn); it != conns_.end()) {
          it->second.queued -= std::min(it->second.queued, n);
          pump_host(it->second);
        }
      }
      if (p.sent == p.data.size()) rx_.pop_front();  // else the rest goes in the next buffer
    } else {
      LOG_WARN_RATELIMITED("vsock: guest receive buffer smaller than a header");
    }
    if (auto s = rx.add_used(*mem_, c.head, written); !s) return s;
    used = true;
  }
  if (pump_all_ && !rx_full()) {
    pump_all_ = false;
    for (auto& [k, c] : conns_) pump_host(c);
  }
  return used ? notify_used(rx, *mem_, *notifier_) : Status{};
}

}  // namespace husk::virtio
