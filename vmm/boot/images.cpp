#include "vmm/boot/images.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace husk::boot {

Result<OpenFile> open_file(const std::string& path, const char* what) {
  OpenFile f;
  f.path = path;
  f.fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f.fd) return make_error(ErrorCode::kInvalidArgument, "cannot open %s %s: %s", what, path.c_str(), strerror(errno));
  struct stat st;
  if (::fstat(f.fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error(ErrorCode::kInvalidArgument, "%s %s is not a regular file", what, path.c_str());
  f.size = static_cast<uint64_t>(st.st_size);
  if (f.size == 0) return make_error(ErrorCode::kInvalidArgument, "%s %s is empty", what, path.c_str());
  return f;
}

Result<BootImages> open_boot_images(const BootConfig& cfg) {
  BootImages b;
  if (!cfg.raw_image.empty()) {
    auto f = open_file(cfg.raw_image, "image");
    if (!f) return f.error();
    b.raw = std::move(f.value());
  } else {
    auto f = open_file(cfg.kernel, "kernel");
    if (!f) return f.error();
    // Parsing reads headers only; mapping the file keeps that free of copies.
    void* p = ::mmap(nullptr, f->size, PROT_READ, MAP_PRIVATE, f->fd.get(), 0);
    if (p == MAP_FAILED) return make_error("cannot map kernel %s: %s", cfg.kernel.c_str(), strerror(errno));
    Mapping map(p, f->size);
    auto img = parse_elf(std::span<const uint8_t>(map.data(), map.size()));
    if (!img) return make_error(ErrorCode::kInvalidArgument, "kernel %s: %s", cfg.kernel.c_str(), img.error().message.c_str());
    if (cfg.pvh && !img->pvh_entry)
      return make_error(ErrorCode::kInvalidArgument, "kernel %s has no PVH entry note (CONFIG_PVH)", cfg.kernel.c_str());
    b.kernel = std::move(f.value());
    b.elf = std::move(img.value());
  }
  if (cfg.initrd) {
    auto f = open_file(*cfg.initrd, "initrd");
    if (!f) return f.error();
    b.initrd = std::move(f.value());
  }
  return b;
}

}  // namespace husk::boot
