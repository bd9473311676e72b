#include "vmm/devices/i8042.h"

#include <algorithm>

namespace husk {
namespace {
constexpr uint64_t kCommand = 4;
constexpr uint8_t kCmdResetCpu = 0xfe;
}  // namespace

void I8042::read(uint64_t, std::span<uint8_t> data) {
  // Status 0: output buffer empty, input buffer empty, so the guest's kb_wait() returns at once.
  std::fill(data.begin(), data.end(), 0);
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == kCommand && !data.empty() && data[0] == kCmdResetCpu && on_reset_) on_reset_();
}

}  // namespace husk
