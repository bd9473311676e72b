#include "vmm/arch/x86_64/boot_params.h"

#include <cstring>

#include "vmm/arch/x86_64/layout.h"

namespace husk::x86 {
namespace {
constexpr uint32_t kE820Ram = 1;
constexpr uint32_t kE820Reserved = 2;
constexpr uint16_t kBootFlag = 0xaa55;
constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
constexpr uint8_t kLoaderUndefined = 0xff;
constexpr uint32_t kKernelAlignment = 0x01000000;

// PVH ABI (xen/include/public/arch-x86/hvm/start_info.h); not shipped in linux-libc-dev.
constexpr uint32_t kPvhMagic = 0x336ec578;
struct HvmStartInfo {
  uint32_t magic, version, flags, nr_modules;
  uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
  uint32_t memmap_entries, reserved;
};
struct HvmModlistEntry {
  uint64_t paddr, size, cmdline_paddr, reserved;
};
struct HvmMemmapEntry {
  uint64_t addr, size;
  uint32_t type, reserved;
};
}  // namespace

std::vector<E820Entry> e820_map(const std::vector<RamRegion>& ram) {
  std::vector<E820Entry> out;
  for (const auto& r : ram) {
    if (r.start.value == 0) {
      out.push_back({0, std::min(r.size, layout::kEbda), kE820Ram});
      if (r.size > layout::kEbda)
        out.push_back({layout::kEbda, layout::kHimem - layout::kEbda, kE820Reserved});
      if (r.size > layout::kHimem) out.push_back({layout::kHimem, r.size - layout::kHimem, kE820Ram});
    } else {
      out.push_back({r.start.value, r.size, kE820Ram});
    }
  }
  return out;
}

Result<boot_params> make_boot_params(const std::vector<RamRegion>& ram, uint64_t cmdline_addr,
                                     uint32_t cmdline_size,
                                     const std::optional<InitrdPlacement>& initrd) {
  boot_params bp;
  std::memset(&bp, 0, sizeof bp);
  bp.hdr.boot_flag = kBootFlag;
  bp.hdr.header = kHdrSMagic;
  bp.hdr.type_of_loader = kLoaderUndefined;
  bp.hdr.kernel_alignment = kKernelAlignment;
  bp.hdr.cmd_line_ptr = static_cast<uint32_t>(cmdline_addr);
  bp.ext_cmd_line_ptr = static_cast<uint32_t>(cmdline_addr >> 32);
  bp.hdr.cmdline_size = cmdline_size;
  if (initrd) {
    bp.hdr.ramdisk_image = static_cast<uint32_t>(initrd->addr);
    bp.ext_ramdisk_image = static_cast<uint32_t>(initrd->addr >> 32);
    bp.hdr.ramdisk_size = static_cast<uint32_t>(initrd->size);
    bp.ext_ramdisk_size = static_cast<uint32_t>(initrd->size >> 32);
  }
  auto map = e820_map(ram);
  if (map.size() > E820_MAX_ENTRIES_ZEROPAGE) return make_error("too many e820 entries");
  for (size_t i = 0; i < map.size(); ++i) {
    bp.e820_table[i].addr = map[i].addr;
    bp.e820_table[i].size = map[i].size;
    bp.e820_table[i].type = map[i].type;
  }
  bp.e820_entries = static_cast<uint8_t>(map.size());
  return bp;
}

Status write_cmdline(GuestMemory& mem, const std::string& cmdline) {
  if (cmdline.size() + 1 > layout::kCmdlineMax)
    return make_error("kernel command line is %zu bytes, the limit is %llu", cmdline.size(),
                      (unsigned long long)layout::kCmdlineMax - 1);
  if (cmdline.find('\0') != std::string::npos) return make_error("kernel command line contains NUL");
  return mem.write(GuestAddress(layout::kCmdline),
                   std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(cmdline.c_str()),
                                            cmdline.size() + 1));
}

Status write_pvh_start_info(GuestMemory& mem, const std::vector<RamRegion>& ram,
                            const std::optional<InitrdPlacement>& initrd) {
  auto map = e820_map(ram);
  HvmStartInfo si{};
  si.magic = kPvhMagic;
  si.version = 1;
  si.cmdline_paddr = layout::kCmdline;
  uint64_t at = layout::kPvhStartInfo + sizeof si;
  si.memmap_paddr = at;
  si.memmap_entries = static_cast<uint32_t>(map.size());
  for (const auto& e : map) {
    HvmMemmapEntry me{e.addr, e.size, e.type, 0};
    if (auto s = mem.write_obj(GuestAddress(at), me); !s) return s;
    at += sizeof me;
  }
  if (initrd) {
    HvmModlistEntry mod{initrd->addr, initrd->size, 0, 0};
    si.nr_modules = 1;
    si.modlist_paddr = at;
    if (auto s = mem.write_obj(GuestAddress(at), mod); !s) return s;
    at += sizeof mod;
  }
  if (at > layout::kZeroPage) return make_error("PVH start info does not fit below the zero page");
  return mem.write_obj(GuestAddress(layout::kPvhStartInfo), si);
}

}  // namespace husk::x86
