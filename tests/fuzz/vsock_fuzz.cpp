// libFuzzer target: a hostile guest's vsock transmit queue. The input is a sequence of packets
// (header + payload) that the device pops from its tx queue and acts on; host I/O is faked. The
// device must answer or drop each one without crashing or queueing without bound.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "tests/unit/virtio_fake_driver.h"
#include "vmm/virtio/vsock/vsock.h"

namespace {
using namespace husk;
using namespace husk::virtio;

struct NullIo : HostIo {
  void accept(uint64_t, int) override {}
  void read(uint64_t, int, size_t) override {}
  void write(uint64_t, int, std::vector<uint8_t>) override {}
  void forget(uint64_t) override {}
};
struct NullNotifier : Notifier {
  void used_buffers() override {}
  void config_changed() override {}
  void retry_after(uint16_t, uint64_t) override {}
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static NullIo io;
  static NullNotifier notifier;
  auto dev = Vsock::open(VsockConfig{3, "/tmp/husk-vsock-fuzz.sock"});
  if (!dev) return 0;
  (*dev)->set_host_io(&io);
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x100000}}).value();
  std::vector<Queue> queues{Queue(256), Queue(256), Queue(256)};
  testing::FakeQueue rx(mem, 16), tx(mem, 16);
  rx.configure(queues[0]);
  // The tx rings live 0x4000 higher than the rx ones.
  queues[1].size = 16, queues[1].ready = true;
  queues[1].desc_table = GuestAddress(0x5000), queues[1].avail_ring = GuestAddress(0x6000),
  queues[1].used_ring = GuestAddress(0x7000);
  queues[2].size = 16, queues[2].ready = true;
  queues[2].desc_table = GuestAddress(0x9000), queues[2].avail_ring = GuestAddress(0xa000),
  queues[2].used_ring = GuestAddress(0xb000);
  if (!(*dev)->activate(mem, queues, 0, notifier)) return 0;
  // Guest rx buffers: 8 of 4 KiB.
  for (int i = 0; i < 8; ++i) rx.add_chain({{0x40000 + 0x1000ull * static_cast<unsigned>(i), 4096, true}});
  // Each packet: 44-byte header from the input, then a payload of up to 255 bytes.
  size_t pos = 0;
  uint16_t idx = 0, desc = 0;
  while (pos + sizeof(vsock::Header) + 1 <= size && idx < 16) {
    vsock::Header h;
    std::memcpy(&h, data + pos, sizeof h);
    size_t len = data[pos + sizeof h];
    pos += sizeof h + 1;
    len = std::min(len, size - pos);
    uint64_t at = 0x80000 + 0x1000ull * idx;
    (void)mem.write(GuestAddress(at), std::span<const uint8_t>(reinterpret_cast<uint8_t*>(&h), sizeof h));
    (void)mem.write(GuestAddress(at + sizeof h), std::span<const uint8_t>(data + pos, len));
    pos += len;
    (void)mem.write_obj(GuestAddress(0x5000 + 16ull * desc),
                        testing::RawDesc{at, static_cast<uint32_t>(sizeof h + len), 0, 0});
    (void)mem.write_obj(GuestAddress(0x6000 + 4 + 2ull * (idx % 16)), desc);
    ++idx, ++desc;
    (void)mem.write_obj(GuestAddress(0x6000 + 2), idx);
  }
  (void)(*dev)->process_queue(1);
  (void)(*dev)->process_queue(0);
  (*dev)->reset();
  return 0;
}
