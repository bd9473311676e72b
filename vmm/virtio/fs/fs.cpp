#include "vmm/virtio/fs/fs.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace husk::virtio {
namespace {
constexpr size_t kTagBytes = 36;
constexpr uint32_t kRequestQueues = 1;
}  // namespace

Result<std::shared_ptr<Fs>> Fs::open(const FsConfig& cfg) {
  if (cfg.tag.empty() || cfg.tag.size() > kTagBytes)
    return make_error("virtio-fs tag '%s' must be 1 to %zu bytes", cfg.tag.c_str(), kTagBytes);
  auto backend = VhostUserClient::connect(cfg.socket);
  if (!backend) return backend.error();
  if (auto s = backend->set_owner(); !s) return s.error();
  auto features = backend->get_features();
  if (!features) return features.error();
  if (!(*features & kFVersion1)) return make_error("virtio-fs backend does not offer VIRTIO_F_VERSION_1");
  return std::make_shared<Fs>(std::move(*backend), cfg.tag, *features);
}

Fs::Fs(VhostUserClient backend, std::string tag, uint64_t backend_features)
    : backend_(std::move(backend)), tag_(std::move(tag)), backend_features_(backend_features) {
  for (int i = 0; i < 2; ++i) {
    kick_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    call_.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
}

uint64_t Fs::features() const {
  // What the backend offers, less the vhost-user-only bit (the transport adds the ring bits,
  // which virtiofsd supports).
  return backend_features_ & ~kVhostUserFProtocolFeatures & ~(kFVersion1 | kFRingEventIdx | kFRingIndirectDesc);
}

void Fs::read_config(uint64_t offset, std::span<uint8_t> data) {
  // struct virtio_fs_config { u8 tag[36]; le32 num_request_queues; }
  uint8_t cfg[kTagBytes + 4] = {};
  std::memcpy(cfg, tag_.data(), tag_.size());
  std::memcpy(cfg + kTagBytes, &kRequestQueues, 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < sizeof cfg ? cfg[offset + i] : 0;
}

Status Fs::activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t acked, Notifier& notifier) {
  for (const auto& fd : kick_) if (!fd) return make_error("virtio-fs: eventfd: %s", strerror(errno));
  for (const auto& fd : call_) if (!fd) return make_error("virtio-fs: eventfd: %s", strerror(errno));
  if (auto s = backend_.set_features(acked); !s) return s;
  if (auto s = backend_.set_mem_table(mem); !s) return s;
  for (uint32_t i = 0; i < queues.size(); ++i) {
    const Queue& q = queues[i];
    if (!q.ready) continue;
    // The backend needs the rings' addresses in our address space; slice() checks them.
    auto desc = mem.slice(q.desc_table, uint64_t{q.size} * 16);
    auto avail = mem.slice(q.avail_ring, 6 + uint64_t{q.size} * 2);
    auto used = mem.slice(q.used_ring, 6 + uint64_t{q.size} * 8);
    if (!desc || !avail || !used) return make_error("virtio-fs: queue %u rings outside guest memory", i);
    auto addr = [](const Result<std::span<uint8_t>>& s) { return reinterpret_cast<uint64_t>(s->data()); };
    if (auto s = backend_.set_vring_num(i, q.size); !s) return s;
    if (auto s = backend_.set_vring_base(i, 0); !s) return s;
    if (auto s = backend_.set_vring_addr(i, addr(desc), addr(used), addr(avail)); !s) return s;
    if (auto s = backend_.set_vring_call(i, call_[i].get()); !s) return s;
    if (auto s = backend_.set_vring_kick(i, kick_[i].get()); !s) return s;
  }
  notifier_ = &notifier;
  active_ = true;
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
  if (!active_ || index >= kick_.size()) return {};
  uint64_t one = 1;
  // The backend serves the queue; we only pass the kick on.
  if (::write(kick_[index].get(), &one, sizeof one) < 0 && errno != EAGAIN)
    return make_error("virtio-fs: kick failed: %s", strerror(errno));
  return {};
}

void Fs::reset() {
  // Re-activation after a guest reset is not supported by this front end yet: the backend keeps
  // its rings until husk-vmm exits (see README limitations).
  active_ = false;
  notifier_ = nullptr;
}

std::vector<int> Fs::host_fds() const {
  std::vector<int> fds;
  for (const auto& fd : call_) fds.push_back(fd.get());
  return fds;
}

Status Fs::on_host_data(int, std::span<const uint8_t>) {
  // The backend used buffers on a queue: raise the transport's interrupt.
  if (active_ && notifier_) notifier_->used_buffers();
  return {};
}

}  // namespace husk::virtio
