#include "vmm/snapshot/format.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>

#include "common/fd_io.h"
#include "common/unique_fd.h"

namespace husk::snapshot {
namespace {

constexpr char kMagic[8] = {'H', 'U', 'S', 'K', 'S', 'N', 'A', 'P'};

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t crc32;
  uint64_t payload_bytes;
};
static_assert(sizeof(Header) == 24);

uint32_t crc32(std::span<const uint8_t> b) {
  boost::crc_32_type crc;
  crc.process_bytes(b.data(), b.size());
  return crc.checksum();
}

}  // namespace

bool Reader::boolean(const char* what) {
  uint8_t v = u8(what);
  if (v > 1) fail(what, "is not a boolean");
  return v == 1;
}

std::span<const uint8_t> Reader::blob(const char* what) {
  uint32_t n = u32(what);
  if (!ok()) return {};
  if (n > in_.size() - pos_) {
    fail(what, "runs past the end of the file");
    return {};
  }
  auto b = in_.subspan(pos_, n);
  pos_ += n;
  return b;
}

std::string Reader::str(const char* what) {
  auto b = blob(what);
  return std::string(b.begin(), b.end());
}

uint32_t Reader::count(const char* what, size_t min_item_bytes) {
  uint32_t n = u32(what);
  if (ok() && min_item_bytes > 0 && n > (in_.size() - pos_) / min_item_bytes) {
    fail(what, "counts more items than the file holds");
    return 0;
  }
  return ok() ? n : 0;
}

void Reader::fail(const char* what, const char* why) {
  if (error_.empty()) error_ = std::string(what) + " " + why;
}

bool Reader::take(void* out, size_t n, const char* what) {
  if (!ok()) return false;
  if (n > in_.size() - pos_) {
    fail(what, "runs past the end of the file");
    return false;
  }
  std::memcpy(out, in_.data() + pos_, n);
  pos_ += n;
  return true;
}

Status Reader::status() const {
  if (ok()) return {};
  return make_error(ErrorCode::kInvalidArgument, "snapshot state: %s", error_.c_str());
}

Status write_state_file(const std::string& path, const std::vector<uint8_t>& payload) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return make_error("cannot create snapshot %s: %s", path.c_str(), std::strerror(errno));
  return write_state_fd(fd.get(), payload, path);
}

Status write_state_fd(int fd, const std::vector<uint8_t>& payload, const std::string& name) {
  if (::ftruncate(fd, 0) != 0) return make_error("snapshot %s: %s", name.c_str(), std::strerror(errno));
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kFormatVersion;
  h.crc32 = crc32(payload);
  h.payload_bytes = payload.size();
  Status w = pwrite_full(fd, &h, sizeof h, 0);
  if (w) w = pwrite_full(fd, payload.data(), payload.size(), sizeof h);
  if (!w) return w.error().wrap("writing snapshot " + name + ": ");
  if (::fsync(fd) != 0) return make_error("syncing snapshot %s: %s", name.c_str(), std::strerror(errno));
  return {};
}

Result<std::vector<uint8_t>> read_state_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return make_error(ErrorCode::kInvalidArgument, "cannot open snapshot %s: %s", path.c_str(), std::strerror(errno));
  return read_state_fd(fd.get(), path);
}

Result<std::vector<uint8_t>> read_state_fd(int fd, const std::string& name) {
  const std::string& path = name;
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return make_error(ErrorCode::kInvalidArgument, "snapshot %s is not a regular file", path.c_str());
  if (static_cast<uint64_t>(st.st_size) < sizeof(Header) || static_cast<uint64_t>(st.st_size) > kMaxStateBytes + sizeof(Header))
    return make_error(ErrorCode::kInvalidArgument, "snapshot %s: %lld bytes is not a husk snapshot state file", path.c_str(),
                      (long long)st.st_size);
  std::vector<uint8_t> all(static_cast<size_t>(st.st_size));
  if (auto r = pread_full(fd, all.data(), all.size(), 0); !r)
    return make_error(ErrorCode::kInvalidArgument, "reading snapshot %s: %s", path.c_str(), r.error().message.c_str());
  Header h;
  std::memcpy(&h, all.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0)
    return make_error(ErrorCode::kInvalidArgument, "%s is not a husk snapshot (bad magic)", path.c_str());
  if (h.version != kFormatVersion)
    return make_error(ErrorCode::kInvalidArgument,
                      "snapshot %s has format version %u; this husk-vmm reads version %u (snapshots restore on the "
                      "husk version that wrote them)",
                      path.c_str(), h.version, kFormatVersion);
  if (h.payload_bytes != all.size() - sizeof h)
    return make_error(ErrorCode::kInvalidArgument, "snapshot %s is truncated or padded (%llu payload bytes announced, %zu present)",
                      path.c_str(), (unsigned long long)h.payload_bytes, all.size() - sizeof h);
  std::vector<uint8_t> payload(all.begin() + sizeof h, all.end());
  if (crc32(payload) != h.crc32)
    return make_error(ErrorCode::kInvalidArgument, "snapshot %s is corrupted (checksum mismatch)", path.c_str());
  return payload;
}

}  // namespace husk::snapshot
