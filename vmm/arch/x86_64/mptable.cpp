#include "vmm/arch/x86_64/mptable.h"

#include <cstring>

#include "vmm/arch/x86_64/layout.h"

namespace husk::x86 {
namespace {

#pragma pack(push, 1)
struct MpFloatingPointer {
  char signature[4];  // "_MP_"
  uint32_t physptr;
  uint8_t length;  // in 16-byte units
  uint8_t specrev;
  uint8_t checksum;
  uint8_t feature[5];
};
struct MpConfigHeader {
  char signature[4];  // "PCMP"
  uint16_t length;
  uint8_t spec;
  uint8_t checksum;
  char oem[8];
  char product[12];
  uint32_t oemptr;
  uint16_t oemsize;
  uint16_t count;
  uint32_t lapic;
  uint16_t ext_length;
  uint8_t ext_checksum;
  uint8_t reserved;
};
struct MpProcessor {
  uint8_t type, apicid, apicver, cpuflag;
  uint32_t signature, featureflag, reserved[2];
};
struct MpBus {
  uint8_t type, busid;
  char bustype[6];
};
struct MpIoapic {
  uint8_t type, apicid, apicver, flags;
  uint32_t apicaddr;
};
struct MpIntSrc {
  uint8_t type, irqtype;
  uint16_t irqflag;
  uint8_t srcbus, srcbusirq, dstapic, dstirq;
};
#pragma pack(pop)
static_assert(sizeof(MpFloatingPointer) == 16 && sizeof(MpConfigHeader) == 44 &&
              sizeof(MpProcessor) == 20 && sizeof(MpBus) == 8 && sizeof(MpIoapic) == 8 &&
              sizeof(MpIntSrc) == 8);

enum : uint8_t { kProcessor = 0, kBus = 1, kIoapicEntry = 2, kIoInt = 3, kLocalInt = 4 };
enum : uint8_t { kIntVectored = 0, kIntNmi = 1, kIntExt = 3 };
constexpr uint8_t kCpuEnabled = 1, kCpuBsp = 2;
constexpr uint8_t kApicVersion = 0x14, kIoapicVersion = 0x11;
constexpr uint32_t kCpuSignature = 0x600;  // family 6
constexpr uint32_t kCpuFeatures = 0x201;   // FPU, APIC

uint8_t checksum(const uint8_t* p, size_t n) {
  uint8_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum = static_cast<uint8_t>(sum + p[i]);
  return static_cast<uint8_t>(-sum);
}

template <class T>
void append(std::vector<uint8_t>& out, const T& v) {
  auto p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

}  // namespace

Result<std::vector<uint8_t>> build_mptable(unsigned cpus, uint64_t addr) {
  if (cpus == 0 || cpus > kMaxVcpus)
    return make_error("MP table supports 1 to %u vCPUs, not %u", kMaxVcpus, cpus);
  const uint8_t ioapic_id = static_cast<uint8_t>(cpus);
  std::vector<uint8_t> body;
  uint16_t count = 0;
  for (unsigned i = 0; i < cpus; ++i, ++count) {
    MpProcessor p{kProcessor, static_cast<uint8_t>(i), kApicVersion,
                  static_cast<uint8_t>(kCpuEnabled | (i == 0 ? kCpuBsp : 0)), kCpuSignature,
                  kCpuFeatures, {0, 0}};
    append(body, p);
  }
  MpBus bus{kBus, 0, {'I', 'S', 'A', ' ', ' ', ' '}};
  append(body, bus), ++count;
  MpIoapic io{kIoapicEntry, ioapic_id, kIoapicVersion, 1, static_cast<uint32_t>(layout::kIoapic)};
  append(body, io), ++count;
  // ISA IRQ n on IOAPIC pin n, except the timer: KVM's default routing sends GSI 0 to pin 2,
  // as on PC hardware (SeaBIOS describes QEMU the same way). IRQs 16-23 are listed too: the
  // virtio-mmio devices use them.
  for (uint8_t irq = 0; irq < kIoapicPins; ++irq) {
    if (irq == 2) continue;
    uint8_t pin = irq == 0 ? 2 : irq;
    append(body, MpIntSrc{kIoInt, kIntVectored, 0, 0, irq, ioapic_id, pin}), ++count;
  }
  // LINT0 of every local APIC is ExtINT, LINT1 is NMI.
  append(body, MpIntSrc{kLocalInt, kIntExt, 0, 0, 0, 0xff, 0}), ++count;
  append(body, MpIntSrc{kLocalInt, kIntNmi, 0, 0, 0, 0xff, 1}), ++count;

  MpFloatingPointer fp{};
  std::memcpy(fp.signature, "_MP_", 4);
  fp.physptr = static_cast<uint32_t>(addr + sizeof fp);
  fp.length = 1;
  fp.specrev = 4;
  fp.checksum = checksum(reinterpret_cast<const uint8_t*>(&fp), sizeof fp);

  MpConfigHeader h{};
  std::memcpy(h.signature, "PCMP", 4);
  h.length = static_cast<uint16_t>(sizeof h + body.size());
  h.spec = 4;
  std::memcpy(h.oem, "HUSK    ", 8);
  std::memcpy(h.product, "HUSK-VMM    ", 12);
  h.count = count;
  h.lapic = static_cast<uint32_t>(layout::kLapic);

  std::vector<uint8_t> out;
  append(out, fp);
  append(out, h);
  out.insert(out.end(), body.begin(), body.end());
  auto* hp = out.data() + sizeof fp;
  hp[offsetof(MpConfigHeader, checksum)] = checksum(hp, h.length);
  return out;
}

Status write_mptable(GuestMemory& mem, unsigned cpus) {
  auto table = build_mptable(cpus, layout::kEbda);
  if (!table) return table.error();
  if (layout::kEbda + table->size() > layout::kHimem)
    return make_error("MP table for %u vCPUs does not fit below 1 MiB", cpus);
  return mem.write(GuestAddress(layout::kEbda), *table);
}

}  // namespace husk::x86
