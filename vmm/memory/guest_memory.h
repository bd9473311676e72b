// Guest physical memory. Every access from device or loader code goes through a checked
// accessor: a guest-supplied address or length that falls outside RAM (or overflows) yields an
// error, never a host pointer. No raw `gpa -> host pointer` escape exists.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "common/mapping.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace husk {

// A guest physical address; arithmetic on it is overflow-checked.
struct GuestAddress {
  uint64_t value = 0;
  constexpr explicit GuestAddress(uint64_t v = 0) : value(v) {}
  // Returns false on overflow.
  [[nodiscard]] bool checked_add(uint64_t off, GuestAddress* out) const {
    uint64_t r;
    if (__builtin_add_overflow(value, off, &r)) return false;
    *out = GuestAddress(r);
    return true;
  }
  friend constexpr bool operator==(GuestAddress a, GuestAddress b) { return a.value == b.value; }
  friend constexpr auto operator<=>(GuestAddress a, GuestAddress b) { return a.value <=> b.value; }
};

struct RamRegion {
  GuestAddress start;
  uint64_t size;
};

class GuestMemory {
 public:
  // Maps anonymous private memory for each region (lazily backed: untouched guest pages cost
  // no host memory). Regions must not overlap and must be page aligned.
  static Result<GuestMemory> create(const std::vector<RamRegion>& regions);

  // Snapshots. save() writes every region, in order, into `fd` (an empty file; all-zero pages
  // stay holes, so an idle guest's file is small on disk). restore() maps such a file
  // MAP_PRIVATE: pages are read on first touch and the guest's writes are copied, so VMs
  // restored from one file share every page they did not write. No other process ever maps
  // guest memory (virtio-fs's backend sees only a bounce area), so this always works.
  Status save(int fd) const;
  static Result<GuestMemory> restore(const std::vector<RamRegion>& regions, int fd);

  struct Region {
    GuestAddress start;
    uint64_t size;
    Mapping map;
    uint8_t* host() const { return map.data(); }
  };
  const std::vector<Region>& regions() const { return regions_; }
  uint64_t total_size() const;

  Status read(GuestAddress addr, std::span<uint8_t> out) const;
  Status write(GuestAddress addr, std::span<const uint8_t> in);
  Status fill(GuestAddress addr, uint64_t len, uint8_t byte);

  // A view of [addr, addr+len) when it lies inside one region. The span is only valid while
  // this GuestMemory lives; callers must not keep it across a VM teardown.
  Result<std::span<uint8_t>> slice(GuestAddress addr, uint64_t len);

  // Places `len` bytes of file `fd` at `offset` into guest memory at `addr`. Maps the file
  // copy-on-write where page alignment allows (a multi-MiB kernel is then not copied at all),
  // otherwise copies.
  Status load_file(GuestAddress addr, int fd, uint64_t offset, uint64_t len);

  // True when [addr, addr+len) is entirely guest RAM.
  bool contains(GuestAddress addr, uint64_t len) const;

  template <class T>
  Result<T> read_obj(GuestAddress addr) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    // SAFETY: T is trivially copyable, so any byte pattern the guest wrote is a valid T.
    auto s = read(addr, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), sizeof v));
    if (!s) return s.error();
    return v;
  }
  template <class T>
  Status write_obj(GuestAddress addr, const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(addr, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), sizeof v));
  }

 private:
  // Host pointer for [addr, addr+len) if it lies in one region, else nullptr.
  uint8_t* find(GuestAddress addr, uint64_t len) const;
  std::vector<Region> regions_;
};

}  // namespace husk
