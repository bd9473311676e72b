#include "vmm/virtio/fs/fs.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vmm/virtio/chain_io.h"

namespace husk::virtio {
namespace {
constexpr size_t kTagBytes = 36;
constexpr uint32_t kRequestQueues = 1;
constexpr uint16_t kLanes = 2;  // hiprio + one request queue
// Linux sends at most (queue size - 4) pages of data per request (fuse max_pages_limit), about
// 1 MiB on our 256-entry queues: room for three of those in flight, or many small ones.
constexpr uint64_t kDataBytes = 4ull << 20;
// The backend's name for the bounce area; any value works, this one is easy to spot in a trace.
constexpr uint64_t kBounceAddr = 0x4855534b00000000ull;  // "HUSK"
}  // namespace

Result<std::shared_ptr<Fs>> Fs::open(const FsConfig& cfg) {
  if (cfg.tag.empty() || cfg.tag.size() > kTagBytes)
    return make_error("virtio-fs tag '%s' must be 1 to %zu bytes", cfg.tag.c_str(), kTagBytes);
  auto area = BounceArea::create(kLanes, kDataBytes);
  if (!area) return area.error();
  auto backend = VhostUserClient::connect(cfg.socket);
  if (!backend) return backend.error();
  auto fs = std::make_shared<Fs>(std::move(*backend), cfg.tag, std::move(*area));
  for (const auto& lane : fs->lanes_)
    if (!lane.kick || !lane.call) return make_error("virtio-fs: eventfd: %s", strerror(errno));
  return fs;
}

Fs::Fs(VhostUserClient backend, std::string tag, BounceArea area)
    : backend_(std::move(backend)), tag_(std::move(tag)), area_(std::move(area)) {
  for (uint16_t i = 0; i < kLanes; ++i) {
    Lane lane;
    lane.ring = std::make_unique<BackendRing>(area_.base() + i * BounceArea::kPage, area_.base(), kBounceAddr);
    lane.in_flight.resize(BackendRing::kSlots);
    lane.kick.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    lane.call.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    lanes_.push_back(std::move(lane));
  }
}

void Fs::read_config(uint64_t offset, std::span<uint8_t> data) {
  // struct virtio_fs_config { u8 tag[36]; le32 num_request_queues; }
  uint8_t cfg[kTagBytes + 4] = {};
  std::memcpy(cfg, tag_.data(), tag_.size());
  std::memcpy(cfg + kTagBytes, &kRequestQueues, 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < sizeof cfg ? cfg[offset + i] : 0;
}

Status Fs::setup_backend() {
  if (auto s = backend_.set_owner(); !s) return s;
  auto features = backend_.get_features();
  if (!features) return features.error();
  if (!(*features & kFVersion1)) return make_error("virtio-fs backend does not offer VIRTIO_F_VERSION_1");
  // Our rings use no optional ring feature, whatever the guest acked for its own.
  if (auto s = backend_.set_features(kFVersion1); !s) return s;
  VhostUserRegion region{kBounceAddr, area_.size(), reinterpret_cast<uint64_t>(area_.base()), area_.fd()};
  if (auto s = backend_.set_mem_table(std::span<const VhostUserRegion>(&region, 1)); !s) return s;
  for (uint32_t i = 0; i < lanes_.size(); ++i) {
    const Lane& l = lanes_[i];
    if (auto s = backend_.set_vring_num(i, BackendRing::kSize); !s) return s;
    if (auto s = backend_.set_vring_base(i, 0); !s) return s;
    if (auto s = backend_.set_vring_addr(i, l.ring->desc_user_addr(), l.ring->used_user_addr(),
                                         l.ring->avail_user_addr());
        !s)
      return s;
    if (auto s = backend_.set_vring_call(i, l.call.get()); !s) return s;
    if (auto s = backend_.set_vring_kick(i, l.kick.get()); !s) return s;
  }
  backend_ready_ = true;
  return {};
}

Status Fs::activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t, Notifier& notifier) {
  if (queues.size() != lanes_.size()) return make_error("virtio-fs: expected %zu queues", lanes_.size());
  mem_ = &mem;
  queues_ = &queues;
  notifier_ = &notifier;
  return {};
}

Status Fs::check_snapshot(const GuestMemory& mem, const std::vector<Queue>& queues) const {
  for (const auto& q : queues) {
    if (!q.ready) continue;
    // The avail ring's idx (offset 2) counts every request the driver ever posted.
    GuestAddress idx;
    if (!q.avail_ring.checked_add(2, &idx)) return make_error("virtio-fs: bad ring address");
    auto posted = mem.read_obj<uint16_t>(idx);
    if (!posted) return posted.error();
    if (*posted != 0)
      return make_error(ErrorCode::kFailedPrecondition,
                        "virtio-fs '%s' has a live FUSE session (the guest mounted it): snapshot before the share is "
                        "mounted",
                        tag_.c_str());
  }
  return {};
}

Status Fs::process_queue(uint16_t index) {
  if (!queues_ || index >= lanes_.size()) return {};
  // At the guest's first request, not at start or activation: the backend (a virtiofsd started
  // beside us) is still starting then, and a restored guest runs long before it mounts the
  // share. Once: a guest that resets and re-activates the device keeps talking to the same
  // backend on the same rings (requests of the old activation complete as orphans).
  if (!backend_ready_) HUSK_TRY(setup_backend());
  return forward(index);
}

// Moves the guest's requests onto the backend's ring while there is room for them.
Status Fs::forward(uint16_t index) {
  Lane& lane = lanes_[index];
  Queue& queue = (*queues_)[index];
  bool posted = false, used = false;
  for (;;) {
    if (!lane.held) {
      auto popped = queue.pop(*mem_);
      if (!popped) return popped.error();
      if (!*popped) break;
      lane.held = std::move(*popped);
    }
    const DescriptorChain& chain = *lane.held;
    const uint64_t readable = chain.readable_bytes(), writable = chain.writable_bytes();
    if (readable == 0) {  // not a FUSE request: nothing for the backend to read
      HUSK_TRY(queue.add_used(*mem_, chain.head, 0));
      lane.held.reset();
      used = true;
      continue;
    }
    if (readable + writable > area_.data_bytes())
      return make_error("virtio-fs request of %llu bytes is larger than the %llu-byte bounce area",
                        (unsigned long long)(readable + writable), (unsigned long long)area_.data_bytes());
    if (lane.ring->full()) break;
    auto offset = area_.alloc(readable + writable);
    if (!offset) break;  // completions free room and call forward() again
    if (auto s = copy_from_chain(*mem_, chain.readable, 0, area_.span(*offset, readable)); !s) {
      area_.free(*offset, readable + writable);
      return s;
    }
    const uint16_t slot = lane.ring->post(area_.base() + *offset, static_cast<uint32_t>(readable),
                                          static_cast<uint32_t>(writable));
    lane.in_flight[slot] = InFlight{chain.head, chain.writable, *offset, static_cast<uint32_t>(readable),
                                    static_cast<uint32_t>(writable), false};
    lane.held.reset();
    posted = true;
  }
  if (posted) {
    uint64_t one = 1;
    if (::write(lane.kick.get(), &one, sizeof one) < 0 && errno != EAGAIN)
      return make_error("virtio-fs: kick failed: %s", strerror(errno));
  }
  return used ? notify_used(queue, *mem_, *notifier_) : Status{};
}

// Copies the backend's replies back into the guest's buffers and returns them to the guest.
Status Fs::complete(uint16_t index) {
  Lane& lane = lanes_[index];
  bool used = false;
  for (;;) {
    auto done = lane.ring->collect();
    if (!done) return done.error();
    if (!*done) break;
    InFlight req = std::move(*lane.in_flight[(*done)->slot]);
    lane.in_flight[(*done)->slot].reset();
    // The backend may claim more than we offered: the guest gets at most its own buffers.
    const uint32_t written = std::min((*done)->written, req.writable_bytes);
    Status s;
    if (!req.orphan && queues_) {
      s = copy_to_chain(*mem_, req.writable, 0, area_.span(req.offset + req.readable, written));
      if (s) s = (*queues_)[index].add_used(*mem_, req.head, written);
      used = true;
    }
    area_.free(req.offset, uint64_t{req.readable} + req.writable_bytes);
    HUSK_TRY(s);
  }
  if (!queues_) return {};
  if (used) HUSK_TRY(notify_used((*queues_)[index], *mem_, *notifier_));
  return forward(index);
}

void Fs::reset() {
  for (auto& lane : lanes_) {
    lane.held.reset();
    for (auto& f : lane.in_flight)
      if (f) f->orphan = true;
  }
  mem_ = nullptr;
  queues_ = nullptr;
  notifier_ = nullptr;
}

std::vector<int> Fs::host_fds() const {
  std::vector<int> fds;
  for (const auto& lane : lanes_) fds.push_back(lane.call.get());
  return fds;
}

Status Fs::on_host_data(int fd, std::span<const uint8_t>) {
  for (uint16_t i = 0; i < lanes_.size(); ++i)
    if (lanes_[i].call.get() == fd) return complete(i);
  return {};
}

}  // namespace husk::virtio
