// husk-hostile: a freestanding 64-bit guest (no Linux) that attacks husk-vmm's devices the way
// a compromised guest kernel could: registers at every offset and width, malformed rings and
// chains, addresses outside memory, queue changes after DRIVER_OK, block requests past the end
// of the disk, vsock floods with no receive buffers, kick storms, port I/O and MMIO sweeps, a
// serial flood. It is loaded like a vmlinux (64-bit boot protocol: long mode, identity-mapped
// 4 GiB, interrupts off), reports each phase on COM1, and resets through the i8042 at the end:
// husk-vmm must still be there to see that reset and exit 0.
#include <stddef.h>
#include <stdint.h>

namespace {

// --- port and MMIO access ----------------------------------------------------------------
inline void outb(uint16_t p, uint8_t v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(p)); }
inline void outw(uint16_t p, uint16_t v) { asm volatile("outw %0, %1" ::"a"(v), "Nd"(p)); }
inline void outl(uint16_t p, uint32_t v) { asm volatile("outl %0, %1" ::"a"(v), "Nd"(p)); }
inline uint8_t inb(uint16_t p) { uint8_t v; asm volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
inline uint16_t inw(uint16_t p) { uint16_t v; asm volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
inline uint32_t inl(uint16_t p) { uint32_t v; asm volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }

template <class T>
inline T rd(uint64_t a) { return *reinterpret_cast<volatile T*>(a); }
template <class T>
inline void wr(uint64_t a, T v) { *reinterpret_cast<volatile T*>(a) = v; }
// Structures in guest RAM for the device to read: plain stores, ordered before the next MMIO
// access by the compiler barrier in kick() and w32().
template <class T>
inline void put(uint64_t a, const T& v) { __builtin_memcpy(reinterpret_cast<void*>(a), &v, sizeof v); }

// --- output on COM1 ------------------------------------------------------------------------
constexpr uint16_t kCom1 = 0x3f8;
void putc(char c) { outb(kCom1, static_cast<uint8_t>(c)); }
void puts(const char* s) { while (*s) putc(*s++); }
void puthex(uint64_t v) {
  puts("0x");
  for (int i = 60; i >= 0; i -= 4) putc("0123456789abcdef"[(v >> i) & 0xf]);
}
void say(const char* phase) {
  puts("HOSTILE: ");
  puts(phase);
  putc('\n');
}

uint64_t rng_state = 0x9e3779b97f4a7c15ull;
uint64_t rnd() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

void zero(uint64_t at, uint64_t len) {
  for (uint64_t i = 0; i < len; i += 8) wr<uint64_t>(at + i, 0);
}

// --- virtio-mmio -------------------------------------------------------------------------
constexpr uint64_t kVirtioBase = 0xd0001000, kSlot = 0x1000;
constexpr unsigned kSlots = 19;
enum : uint64_t {
  kMagic = 0x000, kVersion = 0x004, kDeviceId = 0x008, kDevFeatures = 0x010, kDevFeaturesSel = 0x014,
  kDrvFeatures = 0x020, kDrvFeaturesSel = 0x024, kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038,
  kQueueReady = 0x044, kQueueNotify = 0x050, kIntStatus = 0x060, kIntAck = 0x064, kStatus = 0x070,
  kDescLo = 0x080, kDescHi = 0x084, kAvailLo = 0x090, kAvailHi = 0x094, kUsedLo = 0x0a0, kUsedHi = 0x0a4,
  kConfig = 0x100,
};
enum : uint32_t { kAck = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8 };
enum : uint16_t { kNext = 1, kWrite = 2, kIndirect = 4 };

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};

// Rings for one queue, in guest RAM at 16 MiB + 64 KiB per (slot, queue).
struct Ring {
  uint64_t desc, avail, used;
  uint16_t size, avail_idx;
};

uint32_t r32(uint64_t dev, uint64_t off) { return rd<uint32_t>(dev + off); }
void w32(uint64_t dev, uint64_t off, uint32_t v) {
  asm volatile("" ::: "memory");
  wr<uint32_t>(dev + off, v);
}

// Resets and negotiates VERSION_1 plus whatever the device offers in the low word.
bool init_device(uint64_t dev) {
  w32(dev, kStatus, 0);
  w32(dev, kStatus, kAck | kDriver);
  w32(dev, kDevFeaturesSel, 0);
  uint32_t lo = r32(dev, kDevFeatures);
  w32(dev, kDrvFeaturesSel, 0);
  w32(dev, kDrvFeatures, lo);
  w32(dev, kDrvFeaturesSel, 1);
  w32(dev, kDrvFeatures, 1);  // VERSION_1
  w32(dev, kStatus, kAck | kDriver | kFeaturesOk);
  return r32(dev, kStatus) & kFeaturesOk;
}

Ring setup_queue(uint64_t dev, unsigned slot, uint16_t q, uint16_t size) {
  Ring r{};
  uint64_t base = 0x1000000 + (uint64_t{slot} * 8 + q) * 0x10000;
  zero(base, 0x10000);
  r.desc = base, r.avail = base + 0x4000, r.used = base + 0x8000, r.size = size;
  w32(dev, kQueueSel, q);
  uint32_t max = r32(dev, kQueueNumMax);
  if (max && size > max) r.size = static_cast<uint16_t>(max);
  w32(dev, kQueueNum, r.size);
  w32(dev, kDescLo, static_cast<uint32_t>(r.desc)), w32(dev, kDescHi, 0);
  w32(dev, kAvailLo, static_cast<uint32_t>(r.avail)), w32(dev, kAvailHi, 0);
  w32(dev, kUsedLo, static_cast<uint32_t>(r.used)), w32(dev, kUsedHi, 0);
  w32(dev, kQueueReady, 1);
  return r;
}

void set_desc(const Ring& r, uint16_t i, Desc d) { put(r.desc + (i % r.size) * sizeof(Desc), d); }
void post(Ring& r, uint16_t head) {
  wr<uint16_t>(r.avail + 4 + (r.avail_idx % r.size) * 2, head);
  r.avail_idx++;
  wr<uint16_t>(r.avail + 2, r.avail_idx);
}
void kick(uint64_t dev, uint16_t q) { w32(dev, kQueueNotify, q); }  // w32's barrier publishes the ring

// A fresh, live device with its queues set up (the previous attack may have broken it).
void ready(uint64_t dev, unsigned slot, Ring* rings, unsigned nq) {
  init_device(dev);
  for (unsigned q = 0; q < nq; q++) rings[q] = setup_queue(dev, slot, static_cast<uint16_t>(q), 64);
  w32(dev, kStatus, kAck | kDriver | kFeaturesOk | kDriverOk);
}

constexpr uint64_t kFar = 0xfffff0000000ull;  // far beyond guest memory

// Every malformed chain the queue code must refuse, each on a freshly reset device.
void ring_attacks(uint64_t dev, unsigned slot, unsigned nq) {
  Ring rings[4];
  const uint64_t buf = 0x3000000 + slot * 0x100000ull;
  for (int attack = 0; attack < 16; attack++) {
    ready(dev, slot, rings, nq);
    for (unsigned q = 0; q < nq; q++) {
      Ring& r = rings[q];
      switch (attack) {
        case 0: set_desc(r, 0, {kFar, 4096, 0, 0}); post(r, 0); break;                        // outside memory
        case 1: set_desc(r, 0, {~0ull - 0x100, 0x1000, kWrite, 0}); post(r, 0); break;         // overflowing
        case 2: set_desc(r, 0, {buf, 16, kNext, 1}); set_desc(r, 1, {buf, 16, kNext, 0}); post(r, 0); break;  // loop
        case 3: set_desc(r, 0, {buf, 16, kNext, 0xffff}); post(r, 0); break;                   // next out of range
        case 4: set_desc(r, 0, {kFar, 64, kIndirect, 0}); post(r, 0); break;                   // indirect table outside
        case 5: set_desc(r, 0, {buf, 17, kIndirect, 0}); post(r, 0); break;                    // indirect, odd size
        case 6:                                                                                // nested indirect
          put(buf, Desc{buf + 0x100, 16, kIndirect, 0});
          set_desc(r, 0, {buf, 16, kIndirect, 0});
          post(r, 0);
          break;
        case 7: set_desc(r, 0, {buf, 0x7fffffff, kWrite, 0}); post(r, 0); break;               // huge length
        case 8: post(r, 0xffff); break;                                                         // head out of range
        case 9:                                                                                 // avail idx far ahead
          r.avail_idx = static_cast<uint16_t>(r.avail_idx + 0x8000);
          wr<uint16_t>(r.avail + 2, r.avail_idx);
          break;
        case 10:                                                                                // writable then readable
          set_desc(r, 0, {buf, 512, kWrite | kNext, 1});
          set_desc(r, 1, {buf + 512, 16, 0, 0});
          post(r, 0);
          break;
        case 11:                                                                                // a chain as long as the table
          for (uint16_t i = 0; i < r.size; i++) set_desc(r, i, {buf + i * 8ull, 8, kNext, static_cast<uint16_t>(i + 1)});
          post(r, 0);
          break;
        case 12:                                                                                // zero-length everything
          set_desc(r, 0, {buf, 0, kNext, 1});
          set_desc(r, 1, {0, 0, kWrite, 0});
          post(r, 0);
          break;
        case 13:                                                                                // queue moved after DRIVER_OK
          w32(dev, kQueueSel, q);
          w32(dev, kDescLo, 0xfffff000), w32(dev, kDescHi, 0xffff);
          w32(dev, kQueueNum, 0xffff);
          w32(dev, kQueueReady, 0);
          set_desc(r, 0, {buf, 16, 0, 0});
          post(r, 0);
          break;
        case 14:                                                                                // used ring outside memory
          w32(dev, kQueueSel, q);
          w32(dev, kUsedLo, 0), w32(dev, kUsedHi, 0xffff);
          set_desc(r, 0, {buf, 64, kWrite, 0});
          post(r, 0);
          break;
        case 15:                                                                                // random garbage descriptors
          for (uint16_t i = 0; i < r.size; i++)
            set_desc(r, i, {rnd() & 0x1fffffff, static_cast<uint32_t>(rnd() & 0xffff), static_cast<uint16_t>(rnd() & 7),
                            static_cast<uint16_t>(rnd() % (r.size + 4))});
          for (int k = 0; k < 32; k++) post(r, static_cast<uint16_t>(rnd() % r.size));
          break;
      }
      kick(dev, static_cast<uint16_t>(q));
    }
    w32(dev, kIntAck, r32(dev, kIntStatus));
  }
  w32(dev, kStatus, 0);
}

// Register space: reads and writes at every offset and width, random values, then a reset.
void register_attacks(uint64_t dev) {
  for (uint64_t off = 0; off < kSlot; off++) {
    (void)rd<uint8_t>(dev + off);
    if (off % 2 == 0) (void)rd<uint16_t>(dev + off);
    if (off % 4 == 0) (void)rd<uint32_t>(dev + off);
    if (off % 8 == 0) (void)rd<uint64_t>(dev + off);
  }
  for (int round = 0; round < 4; round++) {
    for (uint64_t off = 0; off < 0x200; off++) {
      if (off == kStatus && round == 0) continue;
      wr<uint8_t>(dev + off, static_cast<uint8_t>(rnd()));
      if (off % 2 == 0) wr<uint16_t>(dev + off, static_cast<uint16_t>(rnd()));
      if (off % 4 == 0) wr<uint32_t>(dev + off, static_cast<uint32_t>(rnd()));
      if (off % 8 == 0) wr<uint64_t>(dev + off, rnd());
    }
    for (uint64_t off = 0x200; off < kSlot; off += 4) wr<uint32_t>(dev + off, static_cast<uint32_t>(rnd()));
  }
  // Config space at every offset and width, with the device live.
  init_device(dev);
  for (uint64_t off = kConfig; off < kConfig + 0x100; off++) {
    (void)rd<uint8_t>(dev + off);
    wr<uint8_t>(dev + off, static_cast<uint8_t>(rnd()));
    if (off % 4 == 0) wr<uint32_t>(dev + off, static_cast<uint32_t>(rnd()));
    if (off % 8 == 0) (void)rd<uint64_t>(dev + off);
  }
  w32(dev, kStatus, 0);
}

// virtio-blk: well-formed chains carrying requests the disk must refuse.
void blk_attacks(uint64_t dev, unsigned slot) {
  struct Req {
    uint32_t type, reserved;
    uint64_t sector;
  };
  const uint64_t hdr = 0x4000000, data = 0x4100000, status = 0x4200000;
  const uint64_t sectors[] = {~0ull, ~0ull - 1, 1ull << 63, 0x7fffffffffffffffull, 1ull << 40};
  const uint32_t types[] = {0 /*in*/, 1 /*out*/, 4 /*flush*/, 8 /*get id*/, 11, 13, 0xdead};
  Ring rings[1];
  ready(dev, slot, rings, 1);
  Ring& r = rings[0];
  uint16_t d = 0;
  for (uint64_t s : sectors)
    for (uint32_t t : types) {
      const uint32_t lens[] = {512u, 4096u, 100u, 0u};
      for (uint32_t len : lens) {
        put(hdr, Req{t, 0, s});
        set_desc(r, d, {hdr, 16, kNext, static_cast<uint16_t>((d + 1) % r.size)});
        set_desc(r, static_cast<uint16_t>(d + 1), {data, len, static_cast<uint16_t>((t == 0 ? kWrite : 0) | kNext),
                                                     static_cast<uint16_t>((d + 2) % r.size)});
        set_desc(r, static_cast<uint16_t>(d + 2), {status, 1, kWrite, 0});
        post(r, d);
        d = static_cast<uint16_t>((d + 3) % (r.size - 2));
        kick(dev, 0);
      }
    }
  w32(dev, kStatus, 0);
}

// virtio-vsock: thousands of packets wanting answers while no receive buffer is ever posted.
void vsock_flood(uint64_t dev, unsigned slot) {
  struct Hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
  } __attribute__((packed));
  uint64_t cid = rd<uint64_t>(dev + kConfig);
  Ring rings[3];
  ready(dev, slot, rings, 3);
  Ring& tx = rings[1];
  const uint64_t pkt = 0x5000000;
  for (uint32_t i = 0; i < 20000; i++) {
    uint16_t slot_i = static_cast<uint16_t>(i % tx.size);
    uint64_t at = pkt + slot_i * 64ull;
    uint16_t op = static_cast<uint16_t>(1 + i % 7);  // request, response, rst, shutdown, rw, credit update/request
    put(at, Hdr{cid, 2, 1000 + i, 1 + (i % 4096), 0, 1, op, 3, 1u << 30, i});
    set_desc(tx, slot_i, {at, 44, 0, 0});
    post(tx, slot_i);
    if (slot_i == tx.size - 1) kick(dev, 1);
  }
  kick(dev, 1);
  w32(dev, kStatus, 0);
}

void kick_storm(uint64_t dev, unsigned slot, unsigned nq) {
  Ring rings[4];
  ready(dev, slot, rings, nq);
  for (uint32_t i = 0; i < 100000; i++) kick(dev, static_cast<uint16_t>(i % (nq + 2)));
  w32(dev, kStatus, 0);
}

unsigned queues_of(uint32_t device_id) {
  switch (device_id) {
    case 1: return 2;   // net: rx, tx
    case 19: return 3;  // vsock: rx, tx, event
    case 26: return 2;  // fs: hiprio, request
    default: return 1;  // blk, rng
  }
}

}  // namespace

// Entered in long mode with the VMM's identity page tables and GDT; a stack below 8 MiB.
asm(".section .text.start\n"
    ".global _start\n"
    "_start:\n"
    "  mov $0x800000, %rsp\n"
    "  call hostile_main\n"
    "1: hlt\n"
    "  jmp 1b\n"
    ".previous\n");

extern "C" [[noreturn]] void hostile_main() {
  say("start");
  // First, so the console file's bound has wrapped by the time the later phases report.
  say("serial flood");
  for (uint32_t i = 0; i < 512u << 10; i++) putc(i % 128 == 127 ? '\n' : static_cast<char>('a' + i % 26));
  putc('\n');

  unsigned found = 0;
  for (unsigned slot = 0; slot < kSlots; slot++) {
    uint64_t dev = kVirtioBase + slot * kSlot;
    if (r32(dev, kMagic) != 0x74726976) continue;  // "virt"
    uint32_t id = r32(dev, kDeviceId);
    found++;
    puts("HOSTILE: device ");
    puthex(id);
    puts(" at ");
    puthex(dev);
    putc('\n');
    unsigned nq = queues_of(id);
    register_attacks(dev);
    ring_attacks(dev, slot, nq);
    if (id == 2) blk_attacks(dev, slot);
    if (id == 19) vsock_flood(dev, slot);
    kick_storm(dev, slot, nq);
  }
  puts("HOSTILE: virtio devices attacked: ");
  puthex(found);
  putc('\n');

  say("mmio sweep");
  // Around and between the device slots, the boot timer and unassigned space: reads and writes.
  for (uint64_t a = 0xd0000000; a < 0xd0000000 + (kSlots + 4) * kSlot; a += 8) {
    (void)rd<uint32_t>(a);
    (void)rd<uint64_t>(a);
  }
  for (uint64_t a = 0xd0000000 + (kSlots + 1) * kSlot; a < 0xd0100000; a += 0x100) wr<uint32_t>(a, static_cast<uint32_t>(rnd()));
  for (int i = 0; i < 4096; i++) wr<uint8_t>(0xd0000000 + (rnd() & 0xfff), static_cast<uint8_t>(rnd()));  // boot timer

  say("port sweep");
  for (uint32_t p = 0; p < 0x1000; p++) {
    (void)inb(static_cast<uint16_t>(p));
    (void)inw(static_cast<uint16_t>(p));
    (void)inl(static_cast<uint16_t>(p));
  }
  for (uint32_t p = 0; p < 0x1000; p++) {
    if (p >= 0x60 && p <= 0x64) continue;  // the i8042: the reset comes at the end, on purpose
    if (p >= 0x20 && p <= 0xa1) continue;  // PIC/PIT in the kernel, not ours to test
    outb(static_cast<uint16_t>(p), static_cast<uint8_t>(rnd()));
    outw(static_cast<uint16_t>(p), static_cast<uint16_t>(rnd()));
    outl(static_cast<uint16_t>(p), static_cast<uint32_t>(rnd()));
  }
  // The UART's own registers with every value: divisor latch, FIFO control, modem control...
  for (uint32_t v = 0; v < 256; v++)
    for (uint16_t r = 1; r < 8; r++) outb(static_cast<uint16_t>(kCom1 + r), static_cast<uint8_t>(v));
  // The console readable again: 8N1 with DLAB off, no interrupts, and out of loopback (the sweep
  // left MCR's loopback bit set, which would route everything below back into the receiver).
  outb(kCom1 + 3, 0x03);
  outb(kCom1 + 1, 0x00);
  outb(kCom1 + 4, 0x03);

  say("done");
  puts("HOSTILE_DONE\n");
  outb(0x64, 0xfe);  // i8042 reset: husk-vmm exits 0 if it is still standing
  for (;;) asm volatile("hlt");
}
