#include "vmm/virtio/transport/mmio.h"

#include <unistd.h>

#include <cstring>

#include "common/log.h"

namespace husk::virtio {
namespace {

// Register offsets (spec 4.2.2).
enum : uint64_t {
  kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
  kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020,
  kDriverFeaturesSel = 0x024, kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038,
  kQueueReady = 0x044, kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070,
  kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090,
  kQueueDriverHigh = 0x094, kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4,
  kConfigGeneration = 0x0fc, kConfig = 0x100,
};
constexpr uint32_t kMagicValue = 0x74726976;  // "virt"
constexpr uint32_t kVendor = 0x4b535548;      // "HUSK"
enum : uint32_t {
  kAcknowledge = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8, kNeedsReset = 64, kFailed = 128,
};
constexpr uint32_t kIntUsed = 1, kIntConfig = 2;
constexpr uint64_t kTransportFeatures = kFVersion1 | kFRingEventIdx | kFRingIndirectDesc;

void set_low(GuestAddress& a, uint32_t v) { a.value = (a.value & ~0xffffffffull) | v; }
void set_high(GuestAddress& a, uint32_t v) { a.value = (a.value & 0xffffffffull) | (uint64_t{v} << 32); }

}  // namespace

MmioTransport::MmioTransport(std::shared_ptr<Device> device, GuestMemory& mem,
                             std::shared_ptr<Interrupt> irq)
    : device_(std::move(device)), mem_(mem), irq_(std::move(irq)),
      device_features_(device_->features() | kTransportFeatures) {
  for (uint16_t max : device_->queue_max_sizes()) queues_.emplace_back(max);
}

uint32_t MmioTransport::status() const {
  std::lock_guard g(mu_);
  return status_;
}

Queue* MmioTransport::selected() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard g(mu_);
  if (offset >= kConfig) {
    std::fill(data.begin(), data.end(), 0);
    device_->read_config(offset - kConfig, data);
    return;
  }
  // Registers are 32-bit; other widths read as zero (the spec makes them undefined).
  uint32_t v = (data.size() == 4 && offset % 4 == 0) ? read_reg(offset) : 0;
  std::memcpy(data.data(), &v, std::min(data.size(), sizeof v));
  for (size_t i = sizeof v; i < data.size(); ++i) data[i] = 0;
}

uint32_t MmioTransport::read_reg(uint64_t offset) {
  Queue* q = selected();
  switch (offset) {
    case kMagic: return kMagicValue;
    case kVersion: return 2;
    case kDeviceId: return device_->type();
    case kVendorId: return kVendor;
    case kDeviceFeatures:
      return device_features_sel_ == 0 ? static_cast<uint32_t>(device_features_)
             : device_features_sel_ == 1 ? static_cast<uint32_t>(device_features_ >> 32) : 0;
    case kQueueNumMax: return q ? q->max_size() : 0;
    case kQueueReady: return q && q->ready ? 1 : 0;
    case kInterruptStatus: return interrupt_status_.load();
    case kStatus: return status_;
    case kConfigGeneration: return config_generation_;
    default: return 0;
  }
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
  uint16_t notify_queue = 0;
  bool do_notify = false;
  {
    std::lock_guard g(mu_);
    if (offset >= kConfig) {
      device_->write_config(offset - kConfig, data);
      return;
    }
    if (data.size() != 4 || offset % 4) {
      LOG_WARN_RATELIMITED("virtio-mmio: ignoring %zu-byte write at 0x%llx", data.size(),
                           (unsigned long long)offset);
      return;
    }
    uint32_t v;
    std::memcpy(&v, data.data(), 4);
    if (offset == kQueueNotify) {
      notify_queue = static_cast<uint16_t>(v);
      do_notify = true;
    } else {
      write_reg(offset, v);
    }
  }
  if (do_notify) notify(notify_queue);
}

void MmioTransport::write_reg(uint64_t offset, uint32_t v) {
  // Queue and feature setup is only legal before DRIVER_OK (spec 4.2.3.2, 3.1.1).
  bool setup = !(status_ & kDriverOk);
  Queue* q = selected();
  switch (offset) {
    case kDeviceFeaturesSel: device_features_sel_ = v; break;
    case kDriverFeaturesSel: driver_features_sel_ = v; break;
    case kDriverFeatures:
      if (setup && !(status_ & kFeaturesOk) && driver_features_sel_ < 2) {
        unsigned shift = driver_features_sel_ * 32;
        driver_features_ = (driver_features_ & ~(0xffffffffull << shift)) | (uint64_t{v} << shift);
      }
      break;
    case kQueueSel: queue_sel_ = v; break;
    case kQueueNum: if (q && setup) q->size = static_cast<uint16_t>(std::min<uint32_t>(v, 0xffff)); break;
    case kQueueReady: if (q && setup) q->ready = v == 1; break;
    case kQueueDescLow: if (q && setup) set_low(q->desc_table, v); break;
    case kQueueDescHigh: if (q && setup) set_high(q->desc_table, v); break;
    case kQueueDriverLow: if (q && setup) set_low(q->avail_ring, v); break;
    case kQueueDriverHigh: if (q && setup) set_high(q->avail_ring, v); break;
    case kQueueDeviceLow: if (q && setup) set_low(q->used_ring, v); break;
    case kQueueDeviceHigh: if (q && setup) set_high(q->used_ring, v); break;
    case kInterruptAck: interrupt_status_.fetch_and(~v); break;
    case kStatus: set_status(v); break;
    default:
      LOG_WARN_RATELIMITED("virtio-mmio: write to unknown register 0x%llx", (unsigned long long)offset);
  }
}

void MmioTransport::set_status(uint32_t v) {
  if (v == 0) {
    reset_locked();
    return;
  }
  // The driver may only add bits, in order (spec 3.1.1); anything else is ignored.
  if ((v & status_) != status_) return;
  uint32_t added = v & ~status_;
  if (added & kFailed) {
    status_ |= kFailed;
    return;
  }
  if ((added & kDriver) && !(v & kAcknowledge)) return;
  if (added & kFeaturesOk) {
    // FEATURES_OK is refused (left clear, the driver reads it back) unless the driver accepted
    // only offered features and speaks virtio 1.x.
    if (!(v & kDriver) || (driver_features_ & ~device_features_) || !(driver_features_ & kFVersion1))
      v &= ~kFeaturesOk;
  }
  if (added & kDriverOk) {
    if (!(v & kFeaturesOk)) return;
    bool event_idx = driver_features_ & kFRingEventIdx;
    for (auto& q : queues_) {
      if (!q.ready) continue;
      q.event_idx = event_idx;
      if (auto s = q.validate(mem_); !s) {
        status_ = v & ~kDriverOk;
        fail(s.error().message.c_str());
        return;
      }
    }
    if (auto s = device_->activate(mem_, queues_, driver_features_, *this); !s) {
      status_ = v & ~kDriverOk;
      fail(s.error().message.c_str());
      return;
    }
    active_ = true;
  }
  status_ = v;
}

void MmioTransport::fail(const char* why) {
  LOG_WARN_RATELIMITED("virtio device %u needs reset: %s", device_->type(), why);
  broken_ = true;
  status_ |= kNeedsReset;
  ++config_generation_;
  interrupt_status_.fetch_or(kIntConfig);
  irq_->trigger();
}

void MmioTransport::reset_locked() {
  if (active_) device_->reset();
  active_ = broken_ = false;
  for (auto& q : queues_) q.reset();
  status_ = 0;
  interrupt_status_.store(0);
  driver_features_ = 0;
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
}

Status MmioTransport::save(snapshot::Writer& w) const {
  std::lock_guard g(mu_);
  if (active_) HUSK_TRY(device_->check_snapshot(mem_, queues_));
  w.u32(device_->type());
  w.u64(device_features_);
  w.u64(driver_features_);
  w.u32(device_features_sel_);
  w.u32(driver_features_sel_);
  w.u32(queue_sel_);
  w.u32(status_);
  w.u32(interrupt_status_.load());
  w.u32(config_generation_);
  w.boolean(active_);
  w.boolean(broken_);
  w.u32(static_cast<uint32_t>(queues_.size()));
  for (const auto& q : queues_) q.save(w);
  device_->save(w);
  return {};
}

Status MmioTransport::restore(snapshot::Reader& r) {
  std::lock_guard g(mu_);
  uint32_t type = r.u32("virtio device type");
  uint64_t device_features = r.u64("virtio device features");
  if (r.ok() && type != device_->type())
    return make_error(ErrorCode::kInvalidArgument,
                      "snapshot device mismatch: the snapshot has a virtio device of type %u where this VM has type %u "
                      "(give the same devices, in the same order, as the VM that was snapshotted)",
                      type, device_->type());
  if (r.ok() && device_features != device_features_)
    return make_error(ErrorCode::kInvalidArgument,
                      "snapshot device mismatch: virtio device %u offered features 0x%llx when snapshotted, 0x%llx now",
                      type, (unsigned long long)device_features, (unsigned long long)device_features_);
  driver_features_ = r.u64("virtio driver features");
  device_features_sel_ = r.u32("virtio feature select");
  driver_features_sel_ = r.u32("virtio feature select");
  queue_sel_ = r.u32("virtio queue select");
  status_ = r.u32("virtio status");
  interrupt_status_.store(r.u32("virtio interrupt status"));
  config_generation_ = r.u32("virtio config generation");
  bool active = r.boolean("virtio device active");
  broken_ = r.boolean("virtio device broken");
  uint32_t nqueues = r.u32("virtio queue count");
  if (r.ok() && nqueues != queues_.size()) r.fail("virtio queue count", "differs from the device's");
  for (auto& q : queues_) q.restore(r);
  device_->restore(r);
  HUSK_TRY(r.status());
  if (driver_features_ & ~device_features_) return make_error(ErrorCode::kInvalidArgument, "snapshot: driver features not offered");
  if (!active) return {};
  for (auto& q : queues_)
    if (q.ready) HUSK_TRY(q.validate(mem_));
  HUSK_TRY(device_->activate(mem_, queues_, driver_features_, *this));
  active_ = true;
  device_->restored();
  return {};
}

void MmioTransport::notify(uint16_t queue) {
  notifications_.fetch_add(1, std::memory_order_relaxed);
  call_device([&]() -> Status {
    if (!active_ || queue >= queues_.size() || !queues_[queue].ready) return {};
    return device_->process_queue(queue);
  });
}

void MmioTransport::host_data(int fd, std::span<const uint8_t> bytes) {
  call_device([&] { return device_->on_host_data(fd, bytes); });
}

void MmioTransport::host_accept(uint64_t id, int fd) {
  // A broken device cannot take ownership of the new connection: close it here.
  if (!call_device([&] { return device_->on_host_accept(id, fd); })) ::close(fd);
}

void MmioTransport::host_read(uint64_t id, std::span<const uint8_t> bytes) {
  call_device([&] { return device_->on_host_read(id, bytes); });
}

void MmioTransport::host_written(uint64_t id, bool ok) {
  call_device([&] { return device_->on_host_written(id, ok); });
}

void MmioTransport::used_buffers() {
  // Called by the device inside process_queue (lock held).
  interrupt_status_.fetch_or(kIntUsed);
  interrupts_.fetch_add(1, std::memory_order_relaxed);
  irq_->trigger();
}

void MmioTransport::retry_after(uint16_t queue, uint64_t ns) {
  if (schedule_) schedule_(queue, ns);
}

void MmioTransport::config_changed() {
  interrupt_status_.fetch_or(kIntConfig);
  ++config_generation_;
  irq_->trigger();
}

}  // namespace husk::virtio
