#include "vmm/boot/elf.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

namespace husk::boot {
namespace {

constexpr uint32_t kXenElfNotePhys32Entry = 18;
constexpr size_t kMaxSegments = 64;

template <class T>
bool read_at(std::span<const uint8_t> file, uint64_t off, T* out) {
  uint64_t end;
  if (__builtin_add_overflow(off, sizeof(T), &end) || end > file.size()) return false;
  std::memcpy(out, file.data() + off, sizeof(T));
  return true;
}

// Walks one PT_NOTE segment for the Xen PVH entry note.
std::optional<uint32_t> find_pvh_note(std::span<const uint8_t> file, uint64_t off, uint64_t size) {
  auto align4 = [](uint64_t v) { return (v + 3) & ~uint64_t{3}; };
  uint64_t pos = off;
  uint64_t end = off + size;  // caller checked that the segment is inside the file
  while (pos < end) {
    Elf64_Nhdr nh;
    if (end - pos < sizeof nh || !read_at(file, pos, &nh)) break;
    pos += sizeof nh;
    uint64_t name_len = align4(nh.n_namesz), desc_len = align4(nh.n_descsz);
    if (name_len > end - pos || desc_len > end - pos - name_len) break;
    bool is_xen = nh.n_namesz == 4 && std::memcmp(file.data() + pos, "Xen", 4) == 0;
    if (is_xen && nh.n_type == kXenElfNotePhys32Entry && nh.n_descsz >= 4) {
      uint32_t entry;
      std::memcpy(&entry, file.data() + pos + name_len, sizeof entry);
      return entry;
    }
    pos += name_len + desc_len;
  }
  return std::nullopt;
}

}  // namespace

Result<ElfImage> parse_elf(std::span<const uint8_t> file) {
  Elf64_Ehdr eh;
  if (!read_at(file, 0, &eh)) return make_error("kernel image is too small to be an ELF file");
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return make_error("kernel image is not an ELF file (expected an uncompressed vmlinux)");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return make_error("kernel ELF is not 64-bit");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return make_error("kernel ELF is not little-endian");
  if (eh.e_machine != EM_X86_64)
    return make_error("kernel ELF is for machine %u, not x86_64", eh.e_machine);
  if (eh.e_type != ET_EXEC) return make_error("kernel ELF is not an executable (type %u)", eh.e_type);
  if (eh.e_phentsize != sizeof(Elf64_Phdr))
    return make_error("kernel ELF has program header size %u, expected %zu", eh.e_phentsize,
                      sizeof(Elf64_Phdr));
  if (eh.e_phnum == 0) return make_error("kernel ELF has no program headers");
  uint64_t ph_bytes = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), ph_end;
  if (__builtin_add_overflow(eh.e_phoff, ph_bytes, &ph_end) || ph_end > file.size())
    return make_error("kernel ELF program headers lie past the end of the file (truncated?)");

  ElfImage img{};
  img.entry = eh.e_entry;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    (void)read_at(file, eh.e_phoff + uint64_t{i} * sizeof ph, &ph);  // bounds checked above
    uint64_t file_end;
    if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE) continue;
    if (__builtin_add_overflow(ph.p_offset, ph.p_filesz, &file_end) || file_end > file.size())
      return make_error("kernel ELF segment %u lies past the end of the file (truncated?)", i);
    if (ph.p_type == PT_NOTE) {
      if (!img.pvh_entry) img.pvh_entry = find_pvh_note(file, ph.p_offset, ph.p_filesz);
      continue;
    }
    if (ph.p_filesz > ph.p_memsz)
      return make_error("kernel ELF segment %u has file size larger than memory size", i);
    uint64_t mem_end;
    if (__builtin_add_overflow(ph.p_paddr, ph.p_memsz, &mem_end))
      return make_error("kernel ELF segment %u address range overflows", i);
    if (ph.p_memsz == 0) continue;
    if (img.segments.size() == kMaxSegments)
      return make_error("kernel ELF has more than %zu loadable segments", kMaxSegments);
    img.segments.push_back(ElfSegment{ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
  }
  if (img.segments.empty()) return make_error("kernel ELF has no loadable segments");
  std::sort(img.segments.begin(), img.segments.end(),
            [](const ElfSegment& a, const ElfSegment& b) { return a.paddr < b.paddr; });
  for (size_t i = 1; i < img.segments.size(); ++i) {
    const auto& prev = img.segments[i - 1];
    if (img.segments[i].paddr < prev.paddr + prev.memsz)
      return make_error("kernel ELF segments overlap at 0x%llx",
                        (unsigned long long)img.segments[i].paddr);
  }
  bool entry_ok = std::any_of(img.segments.begin(), img.segments.end(), [&](const ElfSegment& s) {
    return img.entry >= s.paddr && img.entry - s.paddr < s.memsz;
  });
  if (!entry_ok)
    return make_error("kernel ELF entry point 0x%llx is not inside a loaded segment",
                      (unsigned long long)img.entry);
  return img;
}

}  // namespace husk::boot
