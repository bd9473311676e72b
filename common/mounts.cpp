#include "common/mounts.h"

#include <cstdio>
#include <cstring>

namespace husk {

bool root_is_initramfs() {
  FILE* f = std::fopen("/proc/self/mounts", "re");
  if (!f) return false;
  char dev[256], dir[256], type[64];
  bool found = false;
  // The last mount on "/" is the root; rootfs is its own type name.
  while (std::fscanf(f, "%255s %255s %63s %*[^\n]", dev, dir, type) == 3)
    if (std::strcmp(dir, "/") == 0) found = std::strcmp(type, "rootfs") == 0;
  std::fclose(f);
  return found;
}

}  // namespace husk
