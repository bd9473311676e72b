#include "vmm/vm/virtio_devices.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace husk {

Result<std::string> VirtioDevices::attach(const std::vector<std::shared_ptr<virtio::Device>>& devices,
                                          const Platform& platform, Bus& mmio, kvm::Vm& vm,
                                          GuestMemory& mem) {
  std::string cmdline;
  for (size_t i = 0; i < devices.size(); ++i) {
    auto slot = platform.virtio_slot(static_cast<unsigned>(i));
    if (!slot) return slot.error();
    auto transport = std::make_shared<virtio::MmioTransport>(
        devices[i], mem, std::make_shared<IrqfdInterrupt>(vm, slot->irq));
    if (auto s = mmio.insert(slot->base, virtio::MmioTransport::kSize, transport); !s) return s.error();
    for (uint16_t q = 0; q < transport->queue_count(); ++q) {
      auto k = std::make_unique<QueueKick>();
      k->transport = transport;
      k->queue = q;
      k->eventfd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!k->eventfd) return make_error("eventfd: %s", strerror(errno));
      vm.register_ioeventfd(k->eventfd.get(), slot->base + virtio::MmioTransport::kQueueNotify, 4, q);
      kicks_.push_back(std::move(k));
    }
    transports_.push_back(transport);
    char frag[96];
    std::snprintf(frag, sizeof frag, " virtio_mmio.device=4K@0x%llx:%u",
                  (unsigned long long)slot->base, slot->irq);
    cmdline += frag;
  }
  return cmdline;
}

void VirtioDevices::start(boost::asio::io_context& io) {
  for (auto& k : kicks_) {
    k->watch = std::make_unique<boost::asio::posix::stream_descriptor>(io, ::dup(k->eventfd.get()));
    arm(*k);
  }
  for (auto& t : transports_) {
    auto* timer = timers_.emplace_back(std::make_unique<boost::asio::steady_timer>(io)).get();
    std::weak_ptr<virtio::MmioTransport> weak = t;
    // Called with the transport locked, on the loop thread: only arm the timer here.
    t->set_scheduler([timer, weak](uint16_t queue, uint64_t ns) {
      timer->expires_after(std::chrono::nanoseconds(ns));
      timer->async_wait([weak, queue](boost::system::error_code ec) {
        if (auto tr = weak.lock(); tr && !ec) tr->notify(queue);
      });
    });
    for (int fd : t->host_fds()) {
      auto w = std::make_unique<HostWatch>();
      w->transport = t;
      w->fd = fd;
      // A duplicate, so closing the watch never closes the device's own descriptor.
      w->watch = std::make_unique<boost::asio::posix::stream_descriptor>(io, ::dup(fd));
      w->buffer.resize(65562 + 64);  // one tap frame with its vnet header
      arm(*w);
      host_watches_.push_back(std::move(w));
    }
  }
}

void VirtioDevices::arm(HostWatch& w) {
  w.watch->async_read_some(boost::asio::buffer(w.buffer),
                           [this, &w](boost::system::error_code ec, size_t n) {
                             if (ec) return;  // EOF or error: the device gets no more input
                             w.transport->host_data(w.fd, std::span<const uint8_t>(w.buffer.data(), n));
                             arm(w);
                           });
}

void VirtioDevices::arm(QueueKick& k) {
  // Reading the eventfd resets its counter: several kicks collapse into one pass.
  k.watch->async_read_some(boost::asio::buffer(&k.counter, sizeof k.counter),
                           [this, &k](boost::system::error_code ec, size_t) {
                             if (ec) return;
                             k.transport->notify(k.queue);
                             arm(k);
                           });
}

}  // namespace husk
