#include "vmm/vm/virtio_devices.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstring>

#include "vmm/kvm/irqfd.h"

namespace husk {

// Every operation is posted to the loop, so devices may ask from vCPU threads (a reset) too.
// Each id owns a duplicate of the device's fd: closing the device's fd never races the loop.
class VirtioDevices::LoopHostIo : public virtio::HostIo {
 public:
  LoopHostIo(boost::asio::io_context& io, std::shared_ptr<virtio::MmioTransport> t)
      : io_(io), transport_(std::move(t)) {}

  void accept(uint64_t id, int listen_fd) override {
    int dup = ::dup(listen_fd);
    boost::asio::post(io_, [this, id, dup] {
      auto e = entry(id);
      e->acceptor = std::make_unique<boost::asio::local::stream_protocol::acceptor>(io_);
      boost::system::error_code ec;
      e->acceptor->assign(boost::asio::local::stream_protocol(), dup, ec);
      if (ec) {
        ::close(dup);
        return;
      }
      accept_next(id, e);
    });
  }
  void read(uint64_t id, int fd, size_t max) override {
    int dup = ::dup(fd);
    boost::asio::post(io_, [this, id, dup, max] {
      auto e = entry(id);
      if (!attach(e, dup)) return;
      e->buffer.resize(max);
      e->stream->async_read_some(boost::asio::buffer(e->buffer), [this, id, e](boost::system::error_code ec, size_t n) {
        if (!e->alive) return;
        transport_->host_read(id, ec ? std::span<const uint8_t>() : std::span<const uint8_t>(e->buffer.data(), n));
      });
    });
  }
  void write(uint64_t id, int fd, std::vector<uint8_t> bytes) override {
    int dup = ::dup(fd);
    boost::asio::post(io_, [this, id, dup, bytes = std::move(bytes)]() mutable {
      auto e = entry(id);
      if (!attach(e, dup)) return;
      auto data = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
      boost::asio::async_write(*e->stream, boost::asio::buffer(*data),
                               [this, id, e, data](boost::system::error_code ec, size_t) {
                                 if (e->alive) transport_->host_written(id, !ec);
                               });
    });
  }
  void forget(uint64_t id) override {
    boost::asio::post(io_, [this, id] {
      auto it = entries_.find(id);
      if (it == entries_.end()) return;
      it->second->alive = false;
      // Close now: a pending read's handler holds the entry, and with it this duplicate of the
      // host socket, until it completes; the host peer must see the stream end at once.
      boost::system::error_code ec;
      if (it->second->stream) it->second->stream->close(ec);
      if (it->second->acceptor) it->second->acceptor->close(ec);
      entries_.erase(it);
    });
  }

 private:
  struct Entry {
    bool alive = true;
    std::unique_ptr<boost::asio::posix::stream_descriptor> stream;
    std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor;
    std::vector<uint8_t> buffer;
  };
  std::shared_ptr<Entry> entry(uint64_t id) {
    auto& e = entries_[id];
    if (!e) e = std::make_shared<Entry>();
    return e;
  }
  // The first operation on an id adopts the duplicate fd; later ones close theirs.
  bool attach(const std::shared_ptr<Entry>& e, int dup) {
    if (e->stream) {
      ::close(dup);
      return true;
    }
    boost::system::error_code ec;
    e->stream = std::make_unique<boost::asio::posix::stream_descriptor>(io_);
    e->stream->assign(dup, ec);
    if (ec) ::close(dup);
    return !ec;
  }
  void accept_next(uint64_t id, std::shared_ptr<Entry> e) {
    e->acceptor->async_accept([this, id, e](boost::system::error_code ec,
                                            boost::asio::local::stream_protocol::socket s) {
      if (!e->alive) return;
      if (!ec) {
        s.non_blocking(true, ec);
        transport_->host_accept(id, s.release());
      }
      accept_next(id, e);
    });
  }

  boost::asio::io_context& io_;
  std::shared_ptr<virtio::MmioTransport> transport_;
  std::map<uint64_t, std::shared_ptr<Entry>> entries_;
};

VirtioDevices::VirtioDevices() = default;
VirtioDevices::~VirtioDevices() = default;

Result<std::string> VirtioDevices::cmdline(const Platform& platform, size_t count) {
  std::string cmdline;
  for (size_t i = 0; i < count; ++i) {
    auto slot = platform.virtio_slot(static_cast<unsigned>(i));
    if (!slot) return slot.error();
    char frag[96];
    std::snprintf(frag, sizeof frag, " virtio_mmio.device=4K@0x%llx:%u", (unsigned long long)slot->base, slot->irq);
    cmdline += frag;
  }
  return cmdline;
}

Status VirtioDevices::attach(const std::vector<std::shared_ptr<virtio::Device>>& devices, const Platform& platform,
                             Bus& mmio, kvm::Vm& vm, GuestMemory& mem) {
  for (size_t i = 0; i < devices.size(); ++i) {
    auto slot = platform.virtio_slot(static_cast<unsigned>(i));
    if (!slot) return slot.error();
    auto irq = kvm::IrqfdInterrupt::create(vm, slot->irq);
    if (!irq) return irq.error();
    auto transport = std::make_shared<virtio::MmioTransport>(devices[i], mem, *irq);
    HUSK_TRY(mmio.insert(slot->base, virtio::MmioTransport::kSize, transport));
    for (uint16_t q = 0; q < transport->queue_count(); ++q) {
      auto k = std::make_unique<QueueKick>();
      k->transport = transport;
      k->queue = q;
      k->eventfd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!k->eventfd) return make_error("eventfd: %s", strerror(errno));
      HUSK_TRY(vm.register_ioeventfd(k->eventfd.get(), slot->base + virtio::MmioTransport::kQueueNotify, 4, q));
      kicks_.push_back(std::move(k));
    }
    transports_.push_back(transport);
  }
  return {};
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
    t->set_scheduler([this, timer, weak](uint16_t queue, uint64_t ns) {
      // A limiter in deep debt may ask for years; a timer takes signed nanoseconds, and an hour
      // at a time is as good as forever.
      timer->expires_after(std::chrono::nanoseconds(std::min<uint64_t>(ns, 3600ull * 1000000000)));
      timer->async_wait([this, weak, queue](boost::system::error_code ec) {
        if (auto tr = weak.lock(); tr && !ec) notify(*tr, queue);
      });
    });
    host_ios_.push_back(std::make_unique<LoopHostIo>(io, t));
    t->set_host_io(host_ios_.back().get());
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
  if (restored_)
    for (auto& k : kicks_) boost::asio::post(io, [this, t = k->transport, q = k->queue] { notify(*t, q); });
}

std::vector<virtio::MmioTransport::Counters> VirtioDevices::counters() const {
  std::vector<virtio::MmioTransport::Counters> out;
  for (const auto& t : transports_) out.push_back(t->counters());
  return out;
}

Status VirtioDevices::save(snapshot::Writer& w) const {
  w.u32(static_cast<uint32_t>(transports_.size()));
  for (const auto& t : transports_) HUSK_TRY(t->save(w));
  return {};
}

Status VirtioDevices::restore(snapshot::Reader& r) {
  uint32_t n = r.u32("virtio device count");
  HUSK_TRY(r.status());
  if (n != transports_.size())
    return make_error(ErrorCode::kInvalidArgument,
                      "snapshot device mismatch: the snapshot has %u virtio devices, this VM %zu (give the same devices, "
                      "in the same order, as the VM that was snapshotted)",
                      n, transports_.size());
  for (auto& t : transports_) HUSK_TRY(t->restore(r));
  restored_ = true;
  return {};
}

void VirtioDevices::arm(HostWatch& w) {
  w.watch->async_read_some(boost::asio::buffer(w.buffer),
                           [this, &w](boost::system::error_code ec, size_t n) {
                             if (ec) return;  // EOF or error: the device gets no more input
                             w.transport->host_data(w.fd, std::span<const uint8_t>(w.buffer.data(), n));
                             if (w.transport->wants_host_data())
                               arm(w);
                             else
                               w.paused = true;
                           });
}

void VirtioDevices::notify(virtio::MmioTransport& t, uint16_t queue) {
  t.notify(queue);
  for (auto& w : host_watches_)
    if (w->paused && w->transport.get() == &t && t.wants_host_data()) {
      w->paused = false;
      arm(*w);
    }
}

void VirtioDevices::arm(QueueKick& k) {
  // Reading the eventfd resets its counter: several kicks collapse into one pass.
  k.watch->async_read_some(boost::asio::buffer(&k.counter, sizeof k.counter),
                           [this, &k](boost::system::error_code ec, size_t) {
                             if (ec) return;
                             notify(*k.transport, k.queue);
                             arm(k);
                           });
}

}  // namespace husk
