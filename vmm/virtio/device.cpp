#include "vmm/virtio/device.h"

namespace husk::virtio {

Status serve_queue(Queue& queue, GuestMemory& mem, Notifier& notifier,
                   const std::function<Result<uint32_t>(const DescriptorChain&)>& handle) {
  bool used = false;
  for (;;) {
    auto chain = queue.pop(mem);
    if (!chain) return chain.error();
    if (!*chain) break;
    auto written = handle(**chain);
    if (!written) return written.error();
    if (auto s = queue.add_used(mem, (*chain)->head, *written); !s) return s;
    used = true;
  }
  if (!used) return {};
  auto notify = queue.needs_notification(mem);
  if (!notify) return notify.error();
  if (*notify) notifier.used_buffers();
  return {};
}

}  // namespace husk::virtio
