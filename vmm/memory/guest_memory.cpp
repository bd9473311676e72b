#include "vmm/memory/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fd_io.h"

namespace husk {
namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kHugePage = 2ull << 20;

// Anonymous memory for `size` bytes at a host address congruent to `gpa` modulo 2 MiB. KVM maps a
// guest page with a 2 MiB entry only where host and guest addresses agree in that alignment and
// the host maps a huge page there, and a file (a restored snapshot) is only mapped with huge pages
// at 2 MiB-aligned addresses; Linux 6.1 aligns neither mapping by itself. Over-reserves by 2 MiB
// and trims.
void* map_aligned(uint64_t gpa, uint64_t size) {
  uint64_t len;
  if (__builtin_add_overflow(size, kHugePage, &len)) return MAP_FAILED;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return p;
  auto base = reinterpret_cast<uintptr_t>(p);
  uintptr_t start = base + ((gpa - base) % kHugePage);
  if (start > base) ::munmap(p, start - base);
  if (uintptr_t end = base + len; end > start + size) ::munmap(reinterpret_cast<void*>(start + size), end - start - size);
  return reinterpret_cast<void*>(start);
}
}  // namespace

Result<GuestMemory> GuestMemory::create(const std::vector<RamRegion>& regions) {
  GuestMemory mem;
  std::vector<RamRegion> sorted = regions;
  std::sort(sorted.begin(), sorted.end(),
            [](const RamRegion& a, const RamRegion& b) { return a.start < b.start; });
  uint64_t prev_end = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const auto& r = sorted[i];
    uint64_t end;
    if (r.size == 0 || r.start.value % kPage || r.size % kPage)
      return make_error("guest RAM region 0x%llx+0x%llx is empty or not page aligned",
                        (unsigned long long)r.start.value, (unsigned long long)r.size);
    if (__builtin_add_overflow(r.start.value, r.size, &end))
      return make_error("guest RAM region at 0x%llx overflows", (unsigned long long)r.start.value);
    if (i > 0 && r.start.value < prev_end) return make_error("guest RAM regions overlap");
    prev_end = end;
    void* p = map_aligned(r.start.value, r.size);
    if (p == MAP_FAILED)
      return make_error("cannot map %llu MiB of guest memory: %s",
                        (unsigned long long)(r.size >> 20), strerror(errno));
    // Guest RAM is never useful in a core dump of the VMM and may hold tenant secrets.
    ::madvise(p, r.size, MADV_DONTDUMP);
    mem.regions_.push_back(Region{r.start, r.size, Mapping(p, r.size)});
  }
  return mem;
}

namespace {

bool all_zero(const uint8_t* p, size_t n) {
  const auto* w = reinterpret_cast<const uint64_t*>(p);  // page aligned
  for (size_t i = 0; i < n / 8; ++i)
    if (w[i]) return false;
  return true;
}

}  // namespace

Status GuestMemory::save(int fd) const {
  if (::ftruncate(fd, static_cast<off_t>(total_size())) != 0)
    return make_error("sizing the memory file: %s", std::strerror(errno));
  uint64_t file_off = 0;
  for (const auto& r : regions_) {
    // Runs of non-zero pages, written as one call each.
    uint64_t run_start = 0;
    bool in_run = false;
    for (uint64_t off = 0; off <= r.size; off += kPage) {
      bool data = off < r.size && !all_zero(r.host() + off, kPage);
      if (data && !in_run) run_start = off, in_run = true;
      if (!data && in_run) {
        if (auto st = pwrite_full(fd, r.host() + run_start, off - run_start, file_off + run_start); !st)
          return st.error().wrap("guest memory: ");
        in_run = false;
      }
    }
    file_off += r.size;
  }
  return {};
}

Result<GuestMemory> GuestMemory::restore(const std::vector<RamRegion>& regions, int fd) {
  uint64_t want = 0;
  for (const auto& r : regions) want += r.size;
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return make_error(ErrorCode::kInvalidArgument, "the memory file is not a regular file");
  if (static_cast<uint64_t>(st.st_size) != want)
    return make_error(ErrorCode::kInvalidArgument,
                      "the memory file holds %llu bytes but the snapshot's guest has %llu bytes of RAM (a memory file "
                      "from another snapshot?)",
                      (unsigned long long)st.st_size, (unsigned long long)want);
  auto mem = create(regions);  // validates the layout; the anonymous maps are replaced below
  if (!mem) return mem.error();
  uint64_t off = 0;
  for (auto& r : mem->regions_) {
    void* p = ::mmap(r.host(), r.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd,
                     static_cast<off_t>(off));
    if (p == MAP_FAILED) return make_error("cannot map the memory file: %s", std::strerror(errno));
    ::madvise(p, r.size, MADV_DONTDUMP);
    off += r.size;
  }
  return mem;
}

uint64_t GuestMemory::total_size() const {
  uint64_t t = 0;
  for (const auto& r : regions_) t += r.size;
  return t;
}

uint8_t* GuestMemory::find(GuestAddress addr, uint64_t len) const {
  for (const auto& r : regions_) {
    if (addr.value < r.start.value) continue;
    uint64_t off = addr.value - r.start.value;
    if (off >= r.size && !(off == r.size && len == 0)) continue;
    if (len > r.size - off) return nullptr;  // spans past the region: no partial access
    return r.host() + off;
  }
  return nullptr;
}

bool GuestMemory::contains(GuestAddress addr, uint64_t len) const {
  return find(addr, len) != nullptr;
}

Status GuestMemory::read(GuestAddress addr, std::span<uint8_t> out) const {
  const uint8_t* p = find(addr, out.size());
  if (!p)
    return make_error("guest read of %zu bytes at 0x%llx is outside guest memory", out.size(),
                      (unsigned long long)addr.value);
  std::memcpy(out.data(), p, out.size());
  return {};
}

Status GuestMemory::write(GuestAddress addr, std::span<const uint8_t> in) {
  uint8_t* p = find(addr, in.size());
  if (!p)
    return make_error("guest write of %zu bytes at 0x%llx is outside guest memory", in.size(),
                      (unsigned long long)addr.value);
  std::memcpy(p, in.data(), in.size());
  return {};
}

Status GuestMemory::fill(GuestAddress addr, uint64_t len, uint8_t byte) {
  uint8_t* p = find(addr, len);
  if (!p)
    return make_error("guest fill of %llu bytes at 0x%llx is outside guest memory",
                      (unsigned long long)len, (unsigned long long)addr.value);
  std::memset(p, byte, len);
  return {};
}

Result<std::span<uint8_t>> GuestMemory::slice(GuestAddress addr, uint64_t len) {
  uint8_t* p = find(addr, len);
  if (!p)
    return make_error("guest range 0x%llx+0x%llx is outside guest memory",
                      (unsigned long long)addr.value, (unsigned long long)len);
  return std::span<uint8_t>(p, len);
}

Status GuestMemory::load_file(GuestAddress addr, int fd, uint64_t offset, uint64_t len) {
  uint8_t* dst = find(addr, len);
  if (!dst)
    return make_error("file range of %llu bytes does not fit guest memory at 0x%llx",
                      (unsigned long long)len, (unsigned long long)addr.value);
  struct stat st;
  uint64_t end;
  if (::fstat(fd, &st) != 0 || __builtin_add_overflow(offset, len, &end) ||
      end > static_cast<uint64_t>(st.st_size))
    return make_error("file range %llu+%llu is past the end of the file",
                      (unsigned long long)offset, (unsigned long long)len);
  uint64_t done = 0;
  // Whole pages whose guest and file offsets share alignment are mapped in place, private
  // (copy-on-write): the kernel page cache backs them and nothing is copied up front.
  if (addr.value % kPage == offset % kPage) {
    uint64_t head = (kPage - addr.value % kPage) % kPage;
    if (head < len) {
      uint64_t body = (len - head) / kPage * kPage;
      if (body > 0) {
        void* want = dst + head;
        void* got = ::mmap(want, body, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd,
                           static_cast<off_t>(offset + head));
        if (got == want) {
          // Copy the unaligned head and tail below, skip the mapped body.
          if (head) {
            ssize_t n = ::pread(fd, dst, head, static_cast<off_t>(offset));
            if (n != static_cast<ssize_t>(head)) return make_error("short read of kernel file");
          }
          done = head + body;
        } else if (got != MAP_FAILED) {
          ::munmap(got, body);
        }
      }
    }
  }
  while (done < len) {
    ssize_t n = ::pread(fd, dst + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("short read from file at offset %llu",
                                  (unsigned long long)(offset + done));
    done += static_cast<uint64_t>(n);
  }
  return {};
}

}  // namespace husk
