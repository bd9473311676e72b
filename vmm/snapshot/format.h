// The snapshot state file: a header (magic, format version, payload size, CRC-32 of the
// payload) and a payload of little-endian fixed-width fields and length-prefixed blobs written
// in one order and read back in the same order. The reader checks every length against what is
// left and every blob against the size its reader expects: a truncated, corrupted or foreign
// file is a clear error, never an overread. KVM structures are kept as blobs of their C layout,
// which the version (and each blob's size) pins: a snapshot restores on the husk-vmm version and
// kernel ABI that wrote it.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "common/result.h"

namespace husk::snapshot {

// Bumped whenever any section changes shape.
constexpr uint32_t kFormatVersion = 2;  // 2: device state after the queues
// A state file holds registers and device state, never guest memory: anything this large is
// not one of ours.
constexpr uint64_t kMaxStateBytes = 16 << 20;

class Writer {
 public:
  void u8(uint8_t v) { raw(&v, 1); }
  void u16(uint16_t v) { raw(&v, 2); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void blob(std::span<const uint8_t> b) {
    u32(static_cast<uint32_t>(b.size()));
    raw(b.data(), b.size());
  }
  void str(const std::string& s) { blob({reinterpret_cast<const uint8_t*>(s.data()), s.size()}); }
  // A KVM structure, as its bytes.
  template <class T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    blob({reinterpret_cast<const uint8_t*>(&v), sizeof v});
  }
  const std::vector<uint8_t>& bytes() const { return out_; }

 private:
  void raw(const void* p, size_t n) {
    if (n == 0) return;
    size_t at = out_.size();
    out_.resize(at + n);
    std::memcpy(out_.data() + at, p, n);
  }
  std::vector<uint8_t> out_;
};

// Reads what a Writer wrote. The first failure sticks: later reads return zeros, and error()
// names the field that failed, so a caller reads a whole section and checks once.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  uint8_t u8(const char* what) { return fixed<uint8_t>(what); }
  uint16_t u16(const char* what) { return fixed<uint16_t>(what); }
  uint32_t u32(const char* what) { return fixed<uint32_t>(what); }
  uint64_t u64(const char* what) { return fixed<uint64_t>(what); }
  bool boolean(const char* what);
  std::span<const uint8_t> blob(const char* what);
  std::string str(const char* what);
  template <class T>
  void pod(T* out, const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    auto b = blob(what);
    if (!ok()) return;
    if (b.size() != sizeof(T)) return fail(what, "has the wrong size");
    std::memcpy(out, b.data(), sizeof(T));
  }
  // A count of items that follow, each at least `min_item_bytes` long: bounded by what is left.
  uint32_t count(const char* what, size_t min_item_bytes);
  // For a section that checks its own invariants (a value out of range, a device mismatch).
  void fail(const char* what, const char* why);
  bool ok() const { return error_.empty(); }
  bool at_end() const { return pos_ == in_.size(); }
  Status status() const;

 private:
  template <class T>
  T fixed(const char* what) {
    T v{};
    if (!take(&v, sizeof v, what)) return T{};
    return v;
  }
  bool take(void* out, size_t n, const char* what);
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  std::string error_;
};

// Writes header + payload to a new file at `path` (O_CREAT|O_TRUNC, mode 0600) and syncs it.
Status write_state_file(const std::string& path, const std::vector<uint8_t>& payload);
// The same into an open regular file, from offset 0 (what was in it is dropped); `name` is for
// messages.
Status write_state_fd(int fd, const std::vector<uint8_t>& payload, const std::string& name);
// Reads and checks a state file; returns its payload.
Result<std::vector<uint8_t>> read_state_file(const std::string& path);
Result<std::vector<uint8_t>> read_state_fd(int fd, const std::string& name);

}  // namespace husk::snapshot
