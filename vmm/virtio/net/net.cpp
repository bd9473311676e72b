#include "vmm/virtio/net/net.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/inherited_fd.h"
#include "common/log.h"
#include "common/tap.h"
#include "vmm/virtio/chain_io.h"

namespace husk::virtio {
namespace {
constexpr uint64_t kFCsum = 1ull << 0;       // the guest may send partially checksummed frames
constexpr uint64_t kFGuestCsum = 1ull << 1;  // ... and take them (the tap hands them on as is)
constexpr uint64_t kFMac = 1ull << 5;
constexpr uint64_t kFGuestTso4 = 1ull << 7;  // the tap may hand the guest 64 KiB TCP segments
constexpr uint64_t kFGuestTso6 = 1ull << 8;
constexpr uint64_t kFHostTso4 = 1ull << 11;  // the guest may send them: the host kernel segments
constexpr uint64_t kFHostTso6 = 1ull << 12;
// Offloads: the vnet header passes through to the tap unchanged both ways, so the host kernel does
// what the header asks (checksum, segmentation) and TCP is not cut into 1500-byte frames at the VM
// boundary. No MRG_RXBUF: with GUEST_TSO, Linux posts 64 KiB receive chains ("big packets").
constexpr uint64_t kOffloads = kFCsum | kFGuestCsum | kFGuestTso4 | kFGuestTso6 | kFHostTso4 | kFHostTso6;
constexpr uint64_t kNumBuffersOffset = 10;
enum : uint16_t { kRxQueue = 0, kTxQueue = 1 };
}  // namespace

Result<std::array<uint8_t, 6>> parse_mac(const std::string& s) {
  std::array<uint8_t, 6> mac{};
  unsigned v[6];
  char extra;
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                  &extra) != 6)
    return make_error("MAC address %s is not of the form aa:bb:cc:dd:ee:ff", s.c_str());
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(v[i]);
  if (mac[0] & 1) return make_error("MAC address %s is a multicast address", s.c_str());
  return mac;
}

Result<std::shared_ptr<Net>> Net::open(const NetConfig& cfg) {
  UniqueFd fd;
  std::string what;
  if (cfg.tap == kNullBackend) return std::make_shared<Net>(UniqueFd(), cfg.mac, cfg.tx_limit, cfg.rx_limit);
  if (int n; is_fd_spec(cfg.tap, &n)) {
    // A tap the shim made in the pod's network namespace: check that it is one, with vnet headers.
    auto taken = take_inherited_fd(n);
    if (!taken) return taken.error();
    fd = std::move(*taken);
    ifreq ifr{};
    if (::ioctl(fd.get(), TUNGETIFF, &ifr) < 0)
      return make_error("--net %s: not a tap device: %s", cfg.tap.c_str(), strerror(errno));
    if (!(ifr.ifr_flags & IFF_TAP) || !(ifr.ifr_flags & IFF_VNET_HDR) || !(ifr.ifr_flags & IFF_NO_PI))
      return make_error("--net %s: tap %s must be opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR", cfg.tap.c_str(), ifr.ifr_name);
    int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl | O_NONBLOCK) < 0)
      return make_error("--net %s: O_NONBLOCK: %s", cfg.tap.c_str(), strerror(errno));
    what = ifr.ifr_name;
    int hdr = kVnetHdrSize;  // whoever opened it may have left the 10-byte default
    if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr) < 0)
      return make_error("tap %s: TUNSETVNETHDRSZ: %s", what.c_str(), strerror(errno));
  } else {
    auto opened = open_tap(cfg.tap, true);
    if (!opened) return opened.error();
    fd = std::move(*opened);
    what = cfg.tap;
  }
  // Until a driver accepts offloads the tap must hand us complete, checksummed frames.
  if (::ioctl(fd.get(), TUNSETOFFLOAD, 0) < 0)
    return make_error("tap %s: TUNSETOFFLOAD: %s", what.c_str(), strerror(errno));
  return std::make_shared<Net>(std::move(fd), cfg.mac, cfg.tx_limit, cfg.rx_limit);
}

Net::Net(UniqueFd tap, std::array<uint8_t, 6> mac, RateLimit tx_limit, RateLimit rx_limit)
    : tap_(std::move(tap)), mac_(mac),
      tx_throttle_{RateLimiter(tx_limit), kTxQueue,
                   [](const DescriptorChain& c) { return c.readable_bytes(); }, std::nullopt},
      rx_limiter_(rx_limit) {}

uint64_t Net::features() const { return kFMac | kOffloads; }

unsigned Net::tap_offloads(uint64_t acked) {
  // What the tap may hand the guest: only what the driver said it takes (TSO needs checksums).
  if (!(acked & kFGuestCsum)) return 0;
  unsigned f = TUN_F_CSUM;
  if (acked & kFGuestTso4) f |= TUN_F_TSO4;
  if (acked & kFGuestTso6) f |= TUN_F_TSO6;
  return f;
}

void Net::read_config(uint64_t offset, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < mac_.size() ? mac_[offset + i] : 0;
}

Status Net::activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t acked, Notifier& notifier) {
  if (queues.size() < 2 || !queues[kRxQueue].ready || !queues[kTxQueue].ready)
    return make_error("virtio-net: receive and transmit queues must both be ready");
  if (tap_ && ::ioctl(tap_.get(), TUNSETOFFLOAD, tap_offloads(acked)) < 0)
    return make_error("virtio-net: setting the tap's offloads: %s", strerror(errno));
  mem_ = &mem;
  queues_ = &queues;
  notifier_ = &notifier;
  return {};
}

void Net::reset() {
  // The next driver may take fewer offloads: no segment the tap queues now may need them.
  if (tap_) (void)::ioctl(tap_.get(), TUNSETOFFLOAD, 0);
  mem_ = nullptr, queues_ = nullptr, notifier_ = nullptr;
  deferred_.reset();
  tx_throttle_.held.reset();
}

Status Net::process_queue(uint16_t index) {
  if (!queues_) return {};
  if (index == kTxQueue) return transmit();
  if (index == kRxQueue) return deliver();
  return {};
}

Status Net::transmit() {
  return serve_queue((*queues_)[kTxQueue], *mem_, *notifier_,
                     [this](const DescriptorChain& c) -> Result<uint32_t> {
    uint64_t len = c.readable_bytes();
    if (len < kVnetHdrSize || len > kMaxFrame) {
      LOG_WARN_RATELIMITED("virtio-net: dropping a %llu-byte transmit buffer", (unsigned long long)len);
      return uint32_t{0};
    }
    if (!tap_) return uint32_t{0};  // the null backend: a cable to nowhere
    auto iov = chain_iovecs(*mem_, c.readable, 0, len);
    if (!iov) return iov.error();
    ssize_t n;
    do n = ::writev(tap_.get(), iov->data(), static_cast<int>(iov->size()));
    while (n < 0 && errno == EINTR);
    // A full tap queue or a down interface drops the frame, like a real NIC.
    if (n < 0) LOG_WARN_RATELIMITED("virtio-net: tap write failed: %s", strerror(errno));
    return uint32_t{0};
  }, tx_throttle_);
}

Status Net::on_host_data(int, std::span<const uint8_t> frame) {
  if (frame.size() <= kVnetHdrSize) return {};
  if (!queues_ || deferred_) {
    ++dropped_;  // no driver (a NIC with its link down), or read although we said wait: drop
    return {};
  }
  bool used = false;
  auto placed = place(frame, used);
  if (!placed) return placed.error();
  if (!*placed) deferred_.emplace(frame.begin(), frame.end());
  return used ? notify_used((*queues_)[kRxQueue], *mem_, *notifier_) : Status{};
}

Status Net::deliver() {
  if (!queues_ || !deferred_) return {};
  bool used = false;
  auto placed = place(*deferred_, used);
  if (!placed) return placed.error();
  if (*placed) deferred_.reset();
  return used ? notify_used((*queues_)[kRxQueue], *mem_, *notifier_) : Status{};
}

Result<bool> Net::place(std::span<const uint8_t> frame, bool& used) {
  Queue& rx = (*queues_)[kRxQueue];
  if (!rx_limiter_.unlimited()) {
    uint64_t bytes = frame.size(), now = monotonic_ns();
    if (!rx_limiter_.consume(bytes, now)) {
      notifier_->retry_after(kRxQueue, rx_limiter_.ns_until(bytes, now));
      return false;
    }
  }
  auto chain = rx.pop(*mem_);
  if (!chain) return chain.error();
  if (!*chain) return false;
  const auto& c = **chain;
  uint32_t written = 0;
  if (c.writable_bytes() >= frame.size()) {
    // The header as the tap wrote it, but num_buffers: without MRG_RXBUF every frame fits one buffer.
    std::array<uint8_t, kVnetHdrSize> hdr;
    std::memcpy(hdr.data(), frame.data(), hdr.size());
    const uint16_t one = 1;
    std::memcpy(hdr.data() + kNumBuffersOffset, &one, sizeof one);
    HUSK_TRY(copy_to_chain(*mem_, c.writable, 0, hdr));
    HUSK_TRY(copy_to_chain(*mem_, c.writable, kVnetHdrSize, frame.subspan(kVnetHdrSize)));
    written = static_cast<uint32_t>(frame.size());
  } else {
    ++dropped_;  // the buffer is too small for this frame: drop it, return the buffer empty
  }
  HUSK_TRY(rx.add_used(*mem_, c.head, written));
  used = true;
  return true;
}

}  // namespace husk::virtio
