// The VM's virtio-mmio devices: one transport per device at the platform's next MMIO slot, its
// queue notifications as ioeventfds served on the event loop (never on a vCPU thread), its
// interrupt as an irqfd, and the kernel command line that announces it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "vmm/arch/platform.h"
#include "vmm/virtio/transport/mmio.h"

namespace husk {

class VirtioDevices {
 public:
  VirtioDevices();
  ~VirtioDevices();
  // The command line fragment that announces `count` devices in the platform's slots
  // (" virtio_mmio.device=4K@0x...:IRQ" each), known before any device is attached.
  static Result<std::string> cmdline(const Platform& platform, size_t count);
  // Puts each device behind an MMIO transport in its slot, with an irqfd and ioeventfds.
  Status attach(const std::vector<std::shared_ptr<virtio::Device>>& devices, const Platform& platform, Bus& mmio,
                kvm::Vm& vm, GuestMemory& mem);
  // Starts serving queue notifications on `io`.
  void start(boost::asio::io_context& io);
  // Snapshots: each transport in slot order. After a restore, start() processes every queue
  // once: a kick the guest made just before the snapshot was lost with the old eventfds, and
  // the guest will not kick again for work it already announced.
  Status save(snapshot::Writer& w) const;
  Status restore(snapshot::Reader& r);
  // Each transport's counters, in slot order.
  std::vector<virtio::MmioTransport::Counters> counters() const;

 private:
  // Watches use asynchronous reads, not readiness waits: Asio's reactor is edge-triggered and
  // a readiness wait re-armed after an edge would miss it; a read first tries the fd itself.
  struct QueueKick {
    std::shared_ptr<virtio::MmioTransport> transport;
    uint16_t queue;
    UniqueFd eventfd;
    std::unique_ptr<boost::asio::posix::stream_descriptor> watch;
    uint64_t counter = 0;
  };
  void arm(QueueKick& k);
  struct HostWatch {
    std::shared_ptr<virtio::MmioTransport> transport;
    int fd;
    std::unique_ptr<boost::asio::posix::stream_descriptor> watch;
    std::vector<uint8_t> buffer;
    bool paused = false;  // the device wants no input until its next queue notification
  };
  void arm(HostWatch& w);
  // A queue notification served on the loop (a kick, a limiter retry, the kicks replayed after a
  // restore); then `t`'s paused host fds are read again if it wants input now.
  void notify(virtio::MmioTransport& t, uint16_t queue);
  std::vector<std::unique_ptr<HostWatch>> host_watches_;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> timers_;  // rate-limiter retries
  class LoopHostIo;  // virtio::HostIo on this event loop, one per transport
  std::vector<std::unique_ptr<LoopHostIo>> host_ios_;
  std::vector<std::shared_ptr<virtio::MmioTransport>> transports_;
  std::vector<std::unique_ptr<QueueKick>> kicks_;
  bool restored_ = false;
};

}  // namespace husk
