// libFuzzer target: snapshot state files. The input is a whole state file (header, checksum and
// all, so the checks on those run too) or, with the checksum recomputed, a payload that the
// device sections read: the serial port and a virtio transport (virtio-rng, restored onto
// 64 KiB of guest memory, then driven by a notification). Whatever the bytes, restore must
// refuse with an error or leave devices that work, never crash or read out of bounds.
#include <sys/mman.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vmm/devices/serial.h"
#include "vmm/snapshot/format.h"
#include "vmm/virtio/rng/rng.h"
#include "vmm/virtio/transport/mmio.h"

namespace {
using namespace husk;

struct NullIrq : Interrupt {
  void trigger() override {}
};

void restore_devices(std::span<const uint8_t> payload) {
  static GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x10000}}).value();
  (void)mem.fill(GuestAddress(0), 0x10000, 0);  // each input starts from the same memory
  snapshot::Reader r(payload);
  Serial serial(std::make_shared<NullIrq>(), [](uint8_t) {});
  serial.restore(r);
  // Rate limited: a restored ring may announce 65535 requests of 64 KiB, and serving them all
  // would measure getrandom, not restore.
  virtio::MmioTransport t(std::make_shared<virtio::Rng>(virtio::RateLimit{16384, 8}), mem, std::make_shared<NullIrq>());
  if (!r.ok() || !t.restore(r)) return;
  // A transport that accepted the state must still behave: read its registers, notify.
  uint8_t reg[4];
  for (uint64_t off = 0; off < 0x100; off += 4) t.read(off, reg);
  t.notify(0);
  uint8_t b = 0;
  serial.read(5, std::span<uint8_t>(&b, 1));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    // As a file: the header checks (magic, version, size, CRC) in front of everything.
    int fd = static_cast<int>(::memfd_create("husk-snapshot-fuzz", MFD_CLOEXEC));
    if (fd < 0) return 0;
    if (::write(fd, data + 1, size - 1) == static_cast<ssize_t>(size - 1)) {
      auto payload = snapshot::read_state_fd(fd, "fuzz");
      if (payload) restore_devices(*payload);
    }
    ::close(fd);
  } else {
    restore_devices(std::span<const uint8_t>(data + 1, size - 1));
  }
  return 0;
}
