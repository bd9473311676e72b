// The virtio-fs device against a fake vhost-user backend in a thread: the backend gets one
// memory region (the bounce area, not guest memory), finds each guest request there as one
// readable + one writable descriptor, and its replies reach the guest's own buffers. A backend
// that lies (claims more bytes than offered, returns what was never posted, runs its index
// ahead) is an error or clamped, never a write outside the guest's buffers.
#include "vmm/virtio/fs/fs.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "tests/unit/vhost_user_wire.h"
#include "tests/unit/virtio_fake_driver.h"

namespace husk::virtio {
namespace {

using testing::Buf;
using testing::FakeQueue;

using NullNotifier = testing::CountingNotifier;

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};

// What the fake backend saw of one request.
struct Seen {
  std::vector<uint8_t> request;
  int readable_descs = 0, writable_descs = 0;
  uint32_t writable_bytes = 0;
};

class FakeBackend {
 public:
  // reply(request) -> bytes to write; `claim` overrides the used length, `id` the used id.
  std::function<std::vector<uint8_t>(const std::vector<uint8_t>&)> reply = [](const auto& r) {
    std::vector<uint8_t> out(r);
    for (auto& c : out) c = static_cast<uint8_t>(std::toupper(c));
    return out;
  };
  std::optional<uint32_t> claim, id;
  std::atomic<bool> hold{false};  // leave requests unanswered until released
  std::vector<Seen> seen;         // guarded by mu
  std::mutex mu;
  int regions = -1;
  uint64_t region_size = 0;

  explicit FakeBackend(int fd) : fd_(fd) { thread_ = std::thread([this] { run(); }); }
  ~FakeBackend() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    if (map_) ::munmap(map_, region_size);
  }
  size_t seen_count() {
    std::lock_guard l(mu);
    return seen.size();
  }

 private:
  struct Ring {
    uint64_t desc = 0, avail = 0, used = 0;
    int kick = -1, call = -1;
    uint16_t next = 0, used_idx = 0;
  };

  void handle(uint32_t req, const std::vector<uint8_t>& p, const std::vector<int>& fds) {
    auto u64 = [&](size_t off) {
      uint64_t v;
      std::memcpy(&v, p.data() + off, 8);
      return v;
    };
    if (req == 1) {  // GET_FEATURES
      uint32_t hdr[3] = {1, 0x5, 8};
      uint64_t f = 1ull << 32;
      (void)!::write(fd_, hdr, sizeof hdr);
      (void)!::write(fd_, &f, 8);
    } else if (req == 5) {  // SET_MEM_TABLE: {nregions, pad, {gpa, size, uaddr, offset}...}
      uint32_t n;
      std::memcpy(&n, p.data(), 4);
      regions = static_cast<int>(n);
      gpa_ = u64(8), region_size = u64(16), uaddr_ = u64(24);
      map_ = static_cast<uint8_t*>(::mmap(nullptr, region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds.at(0), 0));
      for (int f : fds) ::close(f);
    } else if (req == 9) {  // SET_VRING_ADDR: {index, flags, desc, used, avail, log}
      uint32_t i;
      std::memcpy(&i, p.data(), 4);
      rings_[i].desc = u64(8), rings_[i].used = u64(16), rings_[i].avail = u64(24);
    } else if (req == 12 || req == 13) {  // SET_VRING_KICK / CALL
      auto i = u64(0);
      (req == 12 ? rings_[i].kick : rings_[i].call) = fds.at(0);
    }
  }

  uint8_t* user(uint64_t a) { return map_ + (a - uaddr_); }
  uint8_t* guest(uint64_t a, uint64_t len) {
    EXPECT_TRUE(a >= gpa_ && a + len <= gpa_ + region_size) << "descriptor outside the bounce area";
    return map_ + (a - gpa_);
  }

  void serve(Ring& r) {
    auto* avail_idx = reinterpret_cast<uint16_t*>(user(r.avail + 2));
    while (r.next != __atomic_load_n(avail_idx, __ATOMIC_ACQUIRE)) {
      uint16_t head;
      std::memcpy(&head, user(r.avail + 4 + (r.next % 128) * 2), 2);
      ++r.next;
      Seen s;
      std::vector<std::pair<uint8_t*, uint32_t>> out;
      for (uint16_t i = head;;) {
        Desc d;
        std::memcpy(&d, user(r.desc + i * 16ull), sizeof d);
        uint8_t* b = guest(d.addr, d.len);
        if (d.flags & 2) {
          ++s.writable_descs, s.writable_bytes += d.len;
          out.emplace_back(b, d.len);
        } else {
          ++s.readable_descs;
          s.request.insert(s.request.end(), b, b + d.len);
        }
        if (!(d.flags & 1)) break;
        i = d.next;
      }
      auto rep = reply(s.request);
      uint32_t len = 0;
      for (auto [b, n] : out) {
        uint32_t k = std::min<uint32_t>(n, static_cast<uint32_t>(rep.size()) - len);
        std::memcpy(b, rep.data() + len, k);
        len += k;
      }
      uint32_t elem[2] = {id.value_or(head), claim.value_or(len)};
      std::memcpy(user(r.used + 4 + (r.used_idx % 128) * 8ull), elem, 8);
      ++r.used_idx;
      __atomic_store_n(reinterpret_cast<uint16_t*>(user(r.used + 2)), r.used_idx, __ATOMIC_RELEASE);
      {
        std::lock_guard l(mu);
        seen.push_back(std::move(s));
      }
    }
    uint64_t one = 1;
    (void)!::write(r.call, &one, 8);
  }

  void run() {
    while (!stop_) {
      testing::VhostUserMsg m;
      if (testing::recv_vhost_user(fd_, m, 20)) handle(m.request, m.payload, m.fds);
      for (auto& r : rings_) {
        if (r.kick < 0 || r.call < 0 || !map_ || hold) continue;
        uint64_t v;
        if (::read(r.kick, &v, 8) == 8 || r.next != *reinterpret_cast<uint16_t*>(user(r.avail + 2))) serve(r);
      }
    }
    for (auto& r : rings_) {
      if (r.kick >= 0) ::close(r.kick);
      if (r.call >= 0) ::close(r.call);
    }
  }

  int fd_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  uint8_t* map_ = nullptr;
  uint64_t gpa_ = 0, uaddr_ = 0;
  Ring rings_[2];
};

// "r12" (GCC 12 warns falsely about the obvious string concatenation under -O3).
std::string label(char c, int i) {
  char b[16];
  std::snprintf(b, sizeof b, "%c%d", c, i);
  return b;
}

struct VirtioFsTest : ::testing::Test {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 16 << 20}}).value();
  std::vector<Queue> queues{Queue(256), Queue(256)};
  FakeQueue hiprio{mem, 256, 0}, requests{mem, 256, 0x10000};
  NullNotifier notifier;
  std::unique_ptr<FakeBackend> backend;
  std::shared_ptr<Fs> fs;

  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    backend = std::make_unique<FakeBackend>(sv[1]);
    open_and_activate(sv[0]);
  }
  // The device on the VMM's end of a backend socket, activated by the guest's driver.
  void open_and_activate(int fd) {
    auto f = Fs::open(FsConfig{"share", "fd=" + std::to_string(fd)});
    ASSERT_TRUE(f.ok()) << f.error().message;
    fs = *f;
    hiprio.configure(queues[0]);
    requests.configure(queues[1]);
    auto s = fs->activate(mem, queues, kFVersion1, notifier);
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  void TearDown() override {
    fs.reset();
    backend.reset();
  }
  // Waits for the backend's call on the request queue and lets the device complete.
  Status pump(uint16_t lane = 1, int timeout_ms = 5000) {
    int call = fs->host_fds().at(lane);
    pollfd p{call, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return make_error("no call from the backend");
    uint64_t v;
    (void)!::read(call, &v, 8);
    return fs->on_host_data(call, {});
  }
  void put(uint64_t addr, const std::string& s) {
    ASSERT_TRUE(mem.write(GuestAddress(addr), std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size())).ok());
  }
  std::string get(uint64_t addr, size_t n) {
    std::string s(n, '\0');
    EXPECT_TRUE(mem.read(GuestAddress(addr), std::span(reinterpret_cast<uint8_t*>(s.data()), n)).ok());
    return s;
  }
};

TEST_F(VirtioFsTest, RequestsReachTheBackendThroughTheBounceAreaAndRepliesComeBack) {
  put(0x100000, "hello ");
  put(0x200000, "virtio-fs");
  requests.add_chain({{0x100000, 6}, {0x200000, 9}, {0x300000, 4, true}, {0x400000, 100, true}});
  ASSERT_TRUE(fs->process_queue(1).ok());
  auto s = pump();
  ASSERT_TRUE(s.ok()) << s.error().message;
  // The backend maps one region, the size of the bounce area, and never guest memory.
  EXPECT_EQ(backend->regions, 1);
  EXPECT_LT(backend->region_size, uint64_t{16} << 20);
  ASSERT_EQ(backend->seen_count(), 1u);
  EXPECT_EQ(std::string(backend->seen[0].request.begin(), backend->seen[0].request.end()), "hello virtio-fs");
  EXPECT_EQ(backend->seen[0].readable_descs, 1);
  EXPECT_EQ(backend->seen[0].writable_descs, 1);
  EXPECT_EQ(backend->seen[0].writable_bytes, 104u);
  // The reply is spread over the guest's two writable buffers.
  EXPECT_EQ(get(0x300000, 4), "HELL");
  EXPECT_EQ(get(0x400000, 11), "O VIRTIO-FS");
  EXPECT_EQ(requests.used_idx(), 1);
  EXPECT_EQ(requests.used(0), (std::pair<uint32_t, uint32_t>{0, 15}));
  EXPECT_GE(notifier.used, 1);
}

TEST_F(VirtioFsTest, MoreRequestsThanTheBackendRingHoldsWaitAndAllComplete) {
  // 200 requests: the backend ring carries 64 at a time, the rest are forwarded as replies free
  // slots. Each reply lands in its own request's buffer.
  for (int i = 0; i < 200; ++i) {
    const std::string name = label('r', i);
    put(0x100000 + i * 0x1000, name);
    requests.add_chain({{0x100000 + i * 0x1000ull, static_cast<uint32_t>(name.size())},
                        {0x800000 + i * 0x1000ull, 64, true}});
    if (i % 100 == 99) {  // the guest's ring has 256 descriptors: two batches
      ASSERT_TRUE(fs->process_queue(1).ok());
      while (requests.used_idx() < i + 1) {
        auto s = pump();
        ASSERT_TRUE(s.ok()) << s.error().message;
      }
    }
  }
  EXPECT_EQ(backend->seen_count(), 200u);
  for (int i : {0, 63, 64, 150, 199}) EXPECT_EQ(get(0x800000 + i * 0x1000ull, 4).c_str(), label('R', i));
}

TEST_F(VirtioFsTest, ALargeRequestWaitsForRoomAndATooLargeOneIsAnError) {
  backend->hold = true;
  // Three requests of 1.5 MiB: two fit in the 4 MiB area, the third waits for one to finish.
  for (int i = 0; i < 3; ++i) requests.add_chain({{0x100000, 16}, {0x400000 + i * 0x200000ull, 3 << 19, true}});
  ASSERT_TRUE(fs->process_queue(1).ok());
  backend->hold = false;
  while (requests.used_idx() < 3) {
    auto s = pump();
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  EXPECT_EQ(backend->seen_count(), 3u);
  requests.add_chain({{0x100000, 16}, {0x400000, 8 << 20, true}});
  auto s = fs->process_queue(1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("larger than"), std::string::npos) << s.error().message;
}

TEST_F(VirtioFsTest, ABackendClaimingMoreBytesThanOfferedIsClamped) {
  backend->claim = 1u << 30;
  put(0x100000, "abc");
  put(0x300000 + 8, "guard");
  requests.add_chain({{0x100000, 3}, {0x300000, 8, true}});
  ASSERT_TRUE(fs->process_queue(1).ok());
  ASSERT_TRUE(pump().ok());
  EXPECT_EQ(requests.used(0).second, 8u);
  EXPECT_EQ(get(0x300000 + 8, 5), "guard");
}

TEST_F(VirtioFsTest, ABackendReturningARequestNeverPostedIsAnError) {
  backend->id = 3;  // odd: never a head we post
  put(0x100000, "abc");
  requests.add_chain({{0x100000, 3}, {0x300000, 8, true}});
  ASSERT_TRUE(fs->process_queue(1).ok());
  auto s = pump();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not a request in flight"), std::string::npos) << s.error().message;
  EXPECT_EQ(requests.used_idx(), 0);
}

TEST_F(VirtioFsTest, RepliesToRequestsOfAResetDeviceAreDropped) {
  backend->hold = true;
  put(0x100000, "old");
  put(0x300000, "untouched");
  requests.add_chain({{0x100000, 3}, {0x300000, 9, true}});
  ASSERT_TRUE(fs->process_queue(1).ok());
  fs->reset();
  backend->hold = false;
  ASSERT_TRUE(pump().ok());
  EXPECT_EQ(get(0x300000, 9), "untouched");
  // Re-activated on fresh queues, the device talks to the same backend.
  for (auto& q : queues) q.reset();
  FakeQueue fresh{mem, 256, 0x20000};
  hiprio.configure(queues[0]);
  fresh.configure(queues[1]);
  ASSERT_TRUE(fs->activate(mem, queues, kFVersion1, notifier).ok());
  put(0x100000, "new");
  fresh.add_chain({{0x100000, 3}, {0x500000, 3, true}});
  ASSERT_TRUE(fs->process_queue(1).ok());
  ASSERT_TRUE(pump().ok());
  EXPECT_EQ(get(0x500000, 3), "NEW");
}

TEST_F(VirtioFsTest, HighPriorityRequestsUseTheirOwnRing) {
  put(0x100000, "forget");
  hiprio.add_chain({{0x100000, 6}});
  ASSERT_TRUE(fs->process_queue(0).ok());
  ASSERT_TRUE(pump(0).ok());
  EXPECT_EQ(hiprio.used_idx(), 1);
  EXPECT_EQ(hiprio.used(0).second, 0u);  // nothing written back
  ASSERT_EQ(backend->seen_count(), 1u);
  EXPECT_EQ(backend->seen[0].writable_descs, 0);
}

// A sandbox's virtiofsd starts beside husk-vmm: opening and activating the device ask nothing
// of it (the old handshake at open waited for it on every start), the guest's first request does.
struct VirtioFsLateBackendTest : VirtioFsTest {
  int peer = -1;
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer = sv[1];
    open_and_activate(sv[0]);
  }
};

TEST_F(VirtioFsLateBackendTest, NothingIsAskedOfTheBackendBeforeTheGuestsFirstRequest) {
  pollfd p{peer, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the device talked to its backend before the guest asked";
  backend = std::make_unique<FakeBackend>(peer);  // up only now; it owns the socket
  put(0x100000, "late");
  requests.add_chain({{0x100000, 4}, {0x300000, 4, true}});
  ASSERT_TRUE(fs->process_queue(1).ok());
  ASSERT_TRUE(pump().ok());
  EXPECT_EQ(get(0x300000, 4), "LATE");
  EXPECT_EQ(backend->regions, 1);
}

}  // namespace
}  // namespace husk::virtio
