// libFuzzer target: a hostile driver programming a virtio-mmio transport. The input picks the
// device behind it (virtio-blk on a 64 KiB disk, virtio-net on a socket, virtio-rng), fills the
// first 16 KiB of guest memory (rings, descriptors, requests, frames), then is a sequence of
// register reads, writes and queue notifications. Whatever the order, sizes and addresses, the
// transport and device must refuse or complete each step without crashing or overrunning.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "vmm/virtio/blk/block.h"
#include "vmm/virtio/net/net.h"
#include "vmm/virtio/rng/rng.h"
#include "vmm/virtio/transport/mmio.h"

namespace {
using namespace husk;
using namespace husk::virtio;

struct NullIrq : Interrupt {
  void trigger() override {}
};

std::shared_ptr<Device> make_device(uint8_t kind) {
  switch (kind % 3) {
    case 0: {
      int fd = static_cast<int>(::memfd_create("husk-mmio-fuzz-disk", MFD_CLOEXEC));
      if (fd < 0 || ::ftruncate(fd, 64 << 10) != 0) return nullptr;
      return std::make_shared<Block>(UniqueFd(fd), (64 << 10) / 512, kind & 4, "fuzz");
    }
    case 1: {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return nullptr;
      ::close(sv[1]);  // frames the guest sends go nowhere; writes may fail: the device must cope
      return std::make_shared<Net>(UniqueFd(sv[0]), std::array<uint8_t, 6>{6, 0, 0, 0, 0, 1});
    }
    default:
      return std::make_shared<Rng>();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto dev = make_device(data[0]);
  if (!dev) return 0;
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x20000}}).value();
  size_t image = std::min<size_t>(size - 1, 0x4000);
  (void)mem.write(GuestAddress(0), std::span<const uint8_t>(data + 1, image));
  MmioTransport t(dev, mem, std::make_shared<NullIrq>());
  // Then 7-byte steps: op, offset (LE16), value (LE32).
  for (size_t pos = 1 + image; pos + 7 <= size; pos += 7) {
    uint8_t op = data[pos];
    uint16_t offset;
    uint32_t value;
    std::memcpy(&offset, data + pos + 1, 2);
    std::memcpy(&value, data + pos + 3, 4);
    offset &= 0x1ff;  // registers and config space
    size_t width = (op >> 2) & 3 ? 4 : 1 + ((op >> 4) & 1);  // mostly 4-byte accesses, some 1 and 2
    uint8_t bytes[4];
    std::memcpy(bytes, &value, 4);
    switch (op & 3) {
      case 0: t.read(offset, std::span<uint8_t>(bytes, width)); break;
      case 1:
      case 2: t.write(offset, std::span<const uint8_t>(bytes, width)); break;
      default: t.notify(static_cast<uint16_t>(value & 3)); break;
    }
  }
  return 0;
}
