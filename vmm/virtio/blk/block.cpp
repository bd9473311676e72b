#include "vmm/virtio/blk/block.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "vmm/virtio/chain_io.h"

namespace husk::virtio {
namespace {
constexpr uint64_t kFSegMax = 1ull << 2, kFRo = 1ull << 5, kFFlush = 1ull << 9;
// Data segments per request: the queue size minus header and status. Without SEG_MAX Linux
// sends one segment per request, which cut sequential throughput by more than half.
constexpr uint32_t kSegMax = 254;
constexpr uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8;
constexpr uint8_t kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupp = 2;
constexpr uint64_t kSector = 512;
constexpr size_t kIdBytes = 20;

struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

// Runs a preadv/pwritev to completion over possibly many calls (short transfers are legal).
template <class Fn>
bool transfer_all(std::vector<iovec> iov, uint64_t offset, Fn fn) {
  size_t first = 0;
  while (first < iov.size()) {
    ssize_t n = fn(iov.data() + first, static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX)),
                   static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}
}  // namespace

Result<std::shared_ptr<Block>> Block::open(const BlockConfig& cfg) {
  UniqueFd fd(::open(cfg.path.c_str(), (cfg.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!fd) return make_error("cannot open disk image %s: %s", cfg.path.c_str(), strerror(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error("disk image %s is not a regular file", cfg.path.c_str());
  std::string id = cfg.path.substr(cfg.path.find_last_of('/') + 1);
  return std::make_shared<Block>(std::move(fd), static_cast<uint64_t>(st.st_size) / kSector,
                                 cfg.read_only, id.substr(0, kIdBytes), cfg.limit);
}

Block::Block(UniqueFd fd, uint64_t sectors, bool read_only, std::string id, RateLimit limit)
    : fd_(std::move(fd)), sectors_(sectors), read_only_(read_only), id_(std::move(id)),
      throttle_{RateLimiter(limit), 0, [](const DescriptorChain& c) {
                  // Data bytes: what the guest sends plus what it asks for, minus header and status.
                  uint64_t all = c.readable_bytes() + c.writable_bytes();
                  return all > sizeof(RequestHeader) + 1 ? all - sizeof(RequestHeader) - 1 : 0;
                }, std::nullopt} {}

uint64_t Block::features() const { return kFSegMax | kFFlush | (read_only_ ? kFRo : 0); }

void Block::read_config(uint64_t offset, std::span<uint8_t> data) {
  // struct virtio_blk_config: capacity (le64) at 0, size_max (le32) at 8, seg_max (le32) at 12.
  uint8_t cfg[16] = {};
  std::memcpy(cfg, &sectors_, sizeof sectors_);
  std::memcpy(cfg + 12, &kSegMax, sizeof kSegMax);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = offset + i < sizeof cfg ? cfg[offset + i] : 0;
}

Status Block::activate(GuestMemory& mem, std::vector<Queue>& queues, uint64_t, Notifier& notifier) {
  if (queues.empty() || !queues[0].ready) return make_error("virtio-blk: request queue not ready");
  mem_ = &mem;
  queue_ = &queues[0];
  notifier_ = &notifier;
  return {};
}

void Block::reset() {
  mem_ = nullptr, queue_ = nullptr, notifier_ = nullptr;
  throttle_.held.reset();
}

uint8_t Block::execute(const DescriptorChain& c, uint32_t* written) {
  *written = 0;
  RequestHeader h;
  if (!copy_from_chain(*mem_, c.readable, 0, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&h), sizeof h)))
    return kStatusIoErr;
  uint64_t in_len = c.writable_bytes() - 1;  // the last writable byte is the status
  auto in_range = [&](uint64_t len) {
    uint64_t end_sector;
    return len % kSector == 0 && !__builtin_add_overflow(h.sector, len / kSector, &end_sector) &&
           end_sector <= sectors_;
  };
  switch (h.type) {
    case kTypeIn: {
      if (!in_range(in_len)) return kStatusIoErr;
      auto iov = chain_iovecs(*mem_, c.writable, 0, in_len);
      if (!iov || !transfer_all(*iov, h.sector * kSector, [&](const iovec* v, int n, off_t o) {
            return ::preadv(fd_.get(), v, n, o);
          }))
        return kStatusIoErr;
      *written = static_cast<uint32_t>(in_len);
      return kStatusOk;
    }
    case kTypeOut: {
      if (read_only_) return kStatusIoErr;
      uint64_t out_len = c.readable_bytes() - sizeof h;
      if (!in_range(out_len)) return kStatusIoErr;
      auto iov = chain_iovecs(*mem_, c.readable, sizeof h, out_len);
      if (!iov || !transfer_all(*iov, h.sector * kSector, [&](const iovec* v, int n, off_t o) {
            return ::pwritev(fd_.get(), v, n, o);
          }))
        return kStatusIoErr;
      return kStatusOk;
    }
    case kTypeFlush:
      if (read_only_) return kStatusOk;
      return ::fdatasync(fd_.get()) == 0 ? kStatusOk : kStatusIoErr;
    case kTypeGetId: {
      uint8_t id[kIdBytes] = {};
      std::memcpy(id, id_.data(), std::min(id_.size(), kIdBytes));
      uint64_t n = std::min<uint64_t>(in_len, kIdBytes);
      if (!copy_to_chain(*mem_, c.writable, 0, std::span<const uint8_t>(id, n))) return kStatusIoErr;
      *written = static_cast<uint32_t>(n);
      return kStatusOk;
    }
    default:
      return kStatusUnsupp;
  }
}

Status Block::process_queue(uint16_t index) {
  if (index != 0 || !queue_) return {};
  return serve_queue(*queue_, *mem_, *notifier_, [this](const DescriptorChain& c) -> Result<uint32_t> {
    if (c.readable_bytes() < sizeof(RequestHeader) || c.writable_bytes() < 1) {
      // No header or no room for a status byte: nothing can be reported; the chain goes back.
      LOG_WARN_RATELIMITED("virtio-blk: malformed request (no header or status byte)");
      return uint32_t{0};
    }
    uint32_t written = 0;
    uint8_t status = execute(c, &written);
    if (!copy_to_chain(*mem_, c.writable, c.writable_bytes() - 1, std::span<const uint8_t>(&status, 1)))
      return make_error("virtio-blk: cannot write request status");
    return written + 1;
  }, throttle_);
}

}  // namespace husk::virtio
