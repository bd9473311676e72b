// The boot files, opened and validated before anything else happens (no KVM, no guest memory
// yet): a missing, empty or broken kernel or initrd is reported the same on every host,
// including hosts without /dev/kvm.
#pragma once

#include <optional>
#include <string>

#include "common/mapping.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "vmm/boot/boot_config.h"
#include "vmm/boot/elf.h"

namespace husk::boot {

struct OpenFile {
  std::string path;
  UniqueFd fd;
  uint64_t size = 0;
};

struct BootImages {
  std::optional<OpenFile> kernel;  // with `elf` parsed from it
  std::optional<ElfImage> elf;
  std::optional<OpenFile> raw;
  std::optional<OpenFile> initrd;
};

// Opens a regular, non-empty file for reading; `what` names it in errors ("kernel", "initrd").
Result<OpenFile> open_file(const std::string& path, const char* what);

Result<BootImages> open_boot_images(const BootConfig& cfg);

}  // namespace husk::boot
