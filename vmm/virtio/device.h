// What a virtio device implements, independent of the transport (MMIO today, PCI maybe later).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "common/result.h"
#include "vmm/memory/guest_memory.h"
#include "vmm/virtio/queue.h"
#include "vmm/virtio/rate_limiter.h"
#include "vmm/snapshot/format.h"

namespace husk::virtio {

constexpr uint64_t kFVersion1 = 1ull << 32;
constexpr uint64_t kFRingEventIdx = 1ull << 29;
constexpr uint64_t kFRingIndirectDesc = 1ull << 28;

enum DeviceType : uint32_t { kNet = 1, kBlock = 2, kConsole = 3, kRng = 4, kVsock = 19, kFs = 26 };
// "net", "block", … as the control API's metrics name them; "other" for an unknown id.
const char* device_type_name(uint32_t type);

// Raised by devices; the transport turns it into its interrupt status + an irqfd edge.
class Notifier {
 public:
  virtual ~Notifier() = default;
  virtual void used_buffers() = 0;
  virtual void config_changed() = 0;
  // Asks for process_queue(queue) again after `ns` (a rate-limited device waiting for tokens).
  virtual void retry_after(uint16_t queue, uint64_t ns) = 0;
};

// Asynchronous host I/O a device asks the event loop for (sockets it creates at run time).
// Requests may be made from any thread; results come back through the device's on_host_*
// callbacks on the event loop, serialized with process_queue. `id` names one descriptor for
// the device: ids are never reused, so a late callback cannot reach a newer connection.
class HostIo {
 public:
  virtual ~HostIo() = default;
  virtual void accept(uint64_t id, int listen_fd) = 0;  // on_host_accept for every connection
  virtual void read(uint64_t id, int fd, size_t max) = 0;  // one on_host_read; empty = EOF/error
  virtual void write(uint64_t id, int fd, std::vector<uint8_t> bytes) = 0;  // one on_host_written
  virtual void forget(uint64_t id) = 0;  // no further callbacks for id
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceType type() const = 0;
  virtual std::vector<uint16_t> queue_max_sizes() const = 0;
  // Device-specific feature bits; the transport adds VERSION_1, EVENT_IDX and INDIRECT_DESC.
  virtual uint64_t features() const = 0;
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write_config(uint64_t, std::span<const uint8_t>) {}

  // Called at DRIVER_OK with validated queues (owned by the transport, which outlives the
  // activation). An error marks the device as needing reset.
  virtual Status activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t acked_features,
                          Notifier& notifier) = 0;
  // The driver notified queue `index`. An error means the driver broke the protocol: the
  // transport marks the device DEVICE_NEEDS_RESET and stops processing it.
  virtual Status process_queue(uint16_t index) = 0;
  // Drops all state from activate(); the device may be activated again.
  virtual void reset() = 0;

  // Host-side file descriptors the device takes input from (a tap). The event loop reads them
  // and hands each read's bytes (for a tap: one frame) to on_host_data, serialized with
  // process_queue.
  virtual std::vector<int> host_fds() const { return {}; }
  virtual Status on_host_data(int, std::span<const uint8_t>) { return {}; }
  // False while the device cannot take more input (a NIC whose guest posted no receive buffer):
  // the loop stops reading host_fds, leaving the frames queued in the kernel (whose queue bounds
  // them and pushes back on senders), and asks again after the device's next queue notification.
  virtual bool wants_host_data() const { return true; }

  // Devices with run-time sockets (vsock) get the event loop's HostIo once, before the guest runs.
  virtual void set_host_io(HostIo*) {}
  virtual Status on_host_accept(uint64_t, int) { return {}; }  // the device owns the new fd
  virtual Status on_host_read(uint64_t, std::span<const uint8_t>) { return {}; }
  virtual Status on_host_written(uint64_t, bool) { return {}; }

  // Snapshots, with the guest paused. The transport saves the queues; a device refuses a
  // snapshot it cannot restore (virtio-fs with a live FUSE session) with an error. Host-side
  // state (open streams, frames in flight) is not kept: a restored device has new host
  // resources. restored() runs once the restored device is active again, before the guest runs.
  virtual Status check_snapshot(const GuestMemory&, const std::vector<Queue>&) const { return {}; }
  virtual void restored() {}
  // What a device must carry over beyond its queues because the guest remembers it (the
  // vsock device's next host port: the guest still holds streams on the ports before it).
  // restore() runs before activate(); it reports bad values through the reader.
  virtual void save(snapshot::Writer&) const {}
  virtual void restore(snapshot::Reader&) {}
};

}  // namespace husk::virtio

namespace husk::virtio {

// The loop every request-driven device runs on a notification: pop each available chain,
// let `handle` serve it (returning the bytes written into it), return it as used, and
// interrupt the driver if it asked for that. An error from the queue (a broken driver)
// stops the loop and is returned.
Status serve_queue(Queue& queue, GuestMemory& mem, Notifier& notifier,
                   const std::function<Result<uint32_t>(const DescriptorChain&)>& handle);

// After returning used buffers: interrupts the driver if it asked for that (flags/event idx).
Status notify_used(Queue& queue, const GuestMemory& mem, Notifier& notifier);

// serve_queue behind a rate limiter: a chain the limiter refuses is held (not returned to the
// driver) and served first when the device retries, after the wait the limiter asks for.
struct Throttle {
  RateLimiter limiter;
  uint16_t queue_index = 0;
  std::function<uint64_t(const DescriptorChain&)> bytes;  // cost of a request in bytes
  std::optional<DescriptorChain> held;
};
Status serve_queue(Queue& queue, GuestMemory& mem, Notifier& notifier,
                   const std::function<Result<uint32_t>(const DescriptorChain&)>& handle,
                   Throttle& throttle);

}  // namespace husk::virtio
