// ELF kernel image parsing: good images, truncation, wrong architecture, overlapping segments.
#include "vmm/boot/elf.h"

#include <elf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace husk::boot {
namespace {

struct Seg {
  uint32_t type;
  uint64_t paddr, offset, filesz, memsz;
};

std::vector<uint8_t> make_elf(const std::vector<Seg>& segs, uint64_t entry, size_t file_size = 0x4000) {
  std::vector<uint8_t> f(file_size);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_entry = entry;
  eh.e_phoff = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<uint16_t>(segs.size());
  std::memcpy(f.data(), &eh, sizeof eh);
  for (size_t i = 0; i < segs.size(); ++i) {
    Elf64_Phdr ph{};
    ph.p_type = segs[i].type;
    ph.p_paddr = segs[i].paddr;
    ph.p_offset = segs[i].offset;
    ph.p_filesz = segs[i].filesz;
    ph.p_memsz = segs[i].memsz;
    std::memcpy(f.data() + sizeof eh + i * sizeof ph, &ph, sizeof ph);
  }
  return f;
}

TEST(Elf, ParsesSegmentsSortedAndEntry) {
  auto f = make_elf({{PT_LOAD, 0x2000000, 0x2000, 0x1000, 0x3000},
                     {PT_LOAD, 0x1000000, 0x1000, 0x1000, 0x1000}},
                    0x1000100);
  auto img = parse_elf(f);
  ASSERT_TRUE(img.ok()) << img.error().message;
  EXPECT_EQ(img->entry, 0x1000100u);
  ASSERT_EQ(img->segments.size(), 2u);
  EXPECT_EQ(img->segments[0].paddr, 0x1000000u);
  EXPECT_EQ(img->segments[1].memsz, 0x3000u);
  EXPECT_FALSE(img->pvh_entry.has_value());
}

TEST(Elf, FindsPvhNote) {
  auto f = make_elf({{PT_LOAD, 0x1000000, 0x1000, 0x1000, 0x1000}, {PT_NOTE, 0, 0x3000, 24, 24}},
                    0x1000000);
  Elf64_Nhdr nh{4, 4, 18};
  std::memcpy(f.data() + 0x3000, &nh, sizeof nh);
  std::memcpy(f.data() + 0x3000 + sizeof nh, "Xen", 4);
  uint32_t entry = 0x1000040;
  std::memcpy(f.data() + 0x3000 + sizeof nh + 4, &entry, 4);
  auto img = parse_elf(f);
  ASSERT_TRUE(img.ok()) << img.error().message;
  ASSERT_TRUE(img->pvh_entry.has_value());
  EXPECT_EQ(*img->pvh_entry, 0x1000040u);
}

TEST(Elf, RejectsTruncatedFiles) {
  auto f = make_elf({{PT_LOAD, 0x1000000, 0x1000, 0x1000, 0x1000}}, 0x1000000);
  EXPECT_FALSE(parse_elf(std::span<const uint8_t>(f.data(), 10)).ok());               // header cut
  EXPECT_FALSE(parse_elf(std::span<const uint8_t>(f.data(), sizeof(Elf64_Ehdr) + 8)).ok());  // phdrs cut
  auto r = parse_elf(std::span<const uint8_t>(f.data(), 0x1800));                   // segment cut
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("truncated"), std::string::npos);
  EXPECT_FALSE(parse_elf(std::span<const uint8_t>()).ok());
}

TEST(Elf, RejectsWrongArchitectureClassAndMagic) {
  auto f = make_elf({{PT_LOAD, 0x1000000, 0x1000, 0x1000, 0x1000}}, 0x1000000);
  auto arm = f;
  uint16_t aarch64 = EM_AARCH64;
  std::memcpy(arm.data() + offsetof(Elf64_Ehdr, e_machine), &aarch64, 2);
  auto r = parse_elf(arm);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("x86_64"), std::string::npos);
  auto c32 = f;
  c32[EI_CLASS] = ELFCLASS32;
  EXPECT_FALSE(parse_elf(c32).ok());
  auto bz = f;
  bz[0] = 'M';
  r = parse_elf(bz);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not an ELF"), std::string::npos);
}

TEST(Elf, RejectsOverlappingSegments) {
  auto f = make_elf({{PT_LOAD, 0x1000000, 0x1000, 0x1000, 0x2000},
                     {PT_LOAD, 0x1001000, 0x2000, 0x1000, 0x1000}},
                    0x1000000);
  auto r = parse_elf(f);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("overlap"), std::string::npos);
}

TEST(Elf, RejectsInconsistentSegments) {
  // filesz > memsz
  EXPECT_FALSE(parse_elf(make_elf({{PT_LOAD, 0x1000000, 0x1000, 0x2000, 0x1000}}, 0x1000000)).ok());
  // address overflow
  EXPECT_FALSE(parse_elf(make_elf({{PT_LOAD, ~0ull - 0x10, 0x1000, 0x10, 0x1000}}, ~0ull - 0x8)).ok());
  // offset + filesz overflow
  EXPECT_FALSE(parse_elf(make_elf({{PT_LOAD, 0x1000000, ~0ull, 0x10, 0x10}}, 0x1000000)).ok());
  // entry outside every segment
  EXPECT_FALSE(parse_elf(make_elf({{PT_LOAD, 0x1000000, 0x1000, 0x1000, 0x1000}}, 0x5000000)).ok());
  // no loadable segment
  EXPECT_FALSE(parse_elf(make_elf({{PT_NOTE, 0, 0x1000, 0, 0}}, 0)).ok());
}

TEST(Elf, MalformedNotesAreIgnoredNotFatal) {
  auto f = make_elf({{PT_LOAD, 0x1000000, 0x1000, 0x1000, 0x1000}, {PT_NOTE, 0, 0x3000, 16, 16}},
                    0x1000000);
  Elf64_Nhdr nh{0xffffffff, 0xffffffff, 18};  // sizes far past the segment
  std::memcpy(f.data() + 0x3000, &nh, sizeof nh);
  auto img = parse_elf(f);
  ASSERT_TRUE(img.ok());
  EXPECT_FALSE(img->pvh_entry.has_value());
}

}  // namespace
}  // namespace husk::boot
