#include "vmm/virtio/rng/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

namespace husk::virtio {

Rng::Rng(RateLimit limit)
    : throttle_{RateLimiter(limit), 0, [](const DescriptorChain& c) {
                  return std::min<uint64_t>(c.writable_bytes(), kMaxPerRequest);
                }, {}} {}

Status Rng::activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t, Notifier& notifier) {
  if (queues.empty() || !queues[0].ready) return make_error("virtio-rng: request queue not ready");
  mem_ = &mem;
  queue_ = &queues[0];
  notifier_ = &notifier;
  return {};
}

void Rng::reset() {
  mem_ = nullptr, queue_ = nullptr, notifier_ = nullptr;
  throttle_.held.reset();
}

Result<uint32_t> Rng::fill(const DescriptorChain& c) {
  uint32_t written = 0;  // never above kMaxPerRequest: no wrap whatever the chain claims
  for (const auto& seg : c.writable) {
    uint32_t want = static_cast<uint32_t>(std::min<uint64_t>(seg.len, kMaxPerRequest - written));
    if (want == 0) break;
    auto buf = mem_->slice(seg.addr, want);
    if (!buf) return buf.error();
    size_t done = 0;
    while (done < buf->size()) {
      ssize_t n = ::getrandom(buf->data() + done, buf->size() - done, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // give the guest what we have rather than fail the device
      done += static_cast<size_t>(n);
    }
    written += static_cast<uint32_t>(done);
    if (done < buf->size()) break;
  }
  return written;
}

Status Rng::process_queue(uint16_t index) {
  if (index != 0 || !queue_) return {};
  return serve_queue(*queue_, *mem_, *notifier_, [this](const DescriptorChain& c) { return fill(c); }, throttle_);
}

}  // namespace husk::virtio
