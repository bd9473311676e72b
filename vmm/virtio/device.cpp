#include "vmm/virtio/device.h"

namespace husk::virtio {

const char* device_type_name(uint32_t type) {
  switch (type) {
    case kNet: return "net";
    case kBlock: return "block";
    case kConsole: return "console";
    case kRng: return "rng";
    case kVsock: return "vsock";
    case kFs: return "fs";
    default: return "other";
  }
}

Status notify_used(Queue& queue, const GuestMemory& mem, Notifier& notifier) {
  auto notify = queue.needs_notification(mem);
  if (!notify) return notify.error();
  if (*notify) notifier.used_buffers();
  return {};
}

namespace {
Status serve(Queue& queue, GuestMemory& mem, Notifier& notifier,
             const std::function<Result<uint32_t>(const DescriptorChain&)>& handle,
             Throttle* throttle) {
  bool used = false;
  for (;;) {
    std::optional<DescriptorChain> chain;
    if (throttle && throttle->held) {
      chain = std::move(throttle->held);
      throttle->held.reset();
    } else {
      auto popped = queue.pop(mem);
      if (!popped) return popped.error();
      if (!*popped) break;
      chain = std::move(*popped);
    }
    if (throttle && !throttle->limiter.unlimited()) {
      uint64_t bytes = throttle->bytes(*chain), now = monotonic_ns();
      if (!throttle->limiter.consume(bytes, now)) {
        notifier.retry_after(throttle->queue_index, throttle->limiter.ns_until(bytes, now));
        throttle->held = std::move(chain);
        break;
      }
    }
    auto written = handle(*chain);
    if (!written) return written.error();
    if (auto s = queue.add_used(mem, chain->head, *written); !s) return s;
    used = true;
  }
  return used ? notify_used(queue, mem, notifier) : Status{};
}
}  // namespace

Status serve_queue(Queue& queue, GuestMemory& mem, Notifier& notifier,
                   const std::function<Result<uint32_t>(const DescriptorChain&)>& handle) {
  return serve(queue, mem, notifier, handle, nullptr);
}

Status serve_queue(Queue& queue, GuestMemory& mem, Notifier& notifier,
                   const std::function<Result<uint32_t>(const DescriptorChain&)>& handle,
                   Throttle& throttle) {
  return serve(queue, mem, notifier, handle, &throttle);
}

}  // namespace husk::virtio
