// The vhost-user front end against a fake backend on a socketpair: message layout, fds passed
// with SCM_RIGHTS, and replies checked like untrusted input.
#include "vmm/virtio/fs/vhost_user.h"

#include "tests/unit/vhost_user_wire.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace husk::virtio {
namespace {

struct Msg {
  uint32_t request = 0, flags = 0, size = 0;
  std::vector<uint8_t> payload;
  int nfds = 0;
};

Msg recv_msg(int fd) {
  testing::VhostUserMsg w;
  Msg m;
  if (!testing::recv_vhost_user(fd, w)) return m;
  for (int f : w.fds) close(f);
  m.request = w.request, m.flags = w.flags, m.size = w.size, m.payload = std::move(w.payload);
  m.nfds = static_cast<int>(w.fds.size());
  return m;
}

void reply_u64(int fd, uint32_t request, uint64_t v, uint32_t size = 8) {
  uint32_t hdr[3] = {request, 0x1 | 0x4, size};
  (void)!write(fd, hdr, sizeof hdr);
  (void)!write(fd, &v, size);
}

struct VhostUserTest : ::testing::Test {
  std::string path = "/tmp/husk-vu-" + std::to_string(getpid());
  int listener = -1;
  void SetUp() override {
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    unlink(path.c_str());
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(listener, 1), 0);
  }
  void TearDown() override {
    close(listener);
    unlink(path.c_str());
  }
};

TEST_F(VhostUserTest, FeaturesMemTableAndVrings) {
  std::vector<Msg> seen;
  std::thread backend([&] {
    int fd = accept(listener, nullptr, nullptr);
    for (int i = 0; i < 8; ++i) {
      Msg m = recv_msg(fd);
      if (m.request == 1) reply_u64(fd, 1, (1ull << 32) | (1ull << 30));
      seen.push_back(std::move(m));
    }
    close(fd);
  });
  auto c = VhostUserClient::connect(path);
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE(c->set_owner().ok());
  auto f = c->get_features();
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(*f, (1ull << 32) | (1ull << 30));
  const VhostUserRegion regions[] = {{0, 0x100000, 0x7f0000000000, 0}, {0x200000, 0x100000, 0x7f0000100000, 0}};
  ASSERT_TRUE(c->set_mem_table(regions).ok());
  ASSERT_TRUE(c->set_vring_num(1, 256).ok());
  ASSERT_TRUE(c->set_vring_base(1, 0).ok());
  ASSERT_TRUE(c->set_vring_addr(1, 0x1000, 0x3000, 0x2000).ok());
  int efd = dup(0);
  ASSERT_TRUE(c->set_vring_call(1, efd).ok());
  ASSERT_TRUE(c->set_vring_kick(1, efd).ok());
  close(efd);
  backend.join();
  ASSERT_EQ(seen.size(), 8u);
  EXPECT_EQ(seen[0].request, 3u);  // SET_OWNER
  EXPECT_EQ(seen[0].flags, 1u);    // protocol version 1
  EXPECT_EQ(seen[2].request, 5u);  // SET_MEM_TABLE: 2 regions, 2 fds
  EXPECT_EQ(seen[2].size, 8u + 2 * 32);
  EXPECT_EQ(seen[2].nfds, 2);
  uint64_t gpa1;
  std::memcpy(&gpa1, seen[2].payload.data() + 8 + 32, 8);
  EXPECT_EQ(gpa1, 0x200000u);
  EXPECT_EQ(seen[5].request, 9u);  // SET_VRING_ADDR: index, flags, desc, used, avail, log
  uint64_t desc, used, avail;
  std::memcpy(&desc, seen[5].payload.data() + 8, 8);
  std::memcpy(&used, seen[5].payload.data() + 16, 8);
  std::memcpy(&avail, seen[5].payload.data() + 24, 8);
  EXPECT_EQ(desc, 0x1000u);
  EXPECT_EQ(used, 0x3000u);
  EXPECT_EQ(avail, 0x2000u);
  EXPECT_EQ(seen[6].request, 13u);  // SET_VRING_CALL with its fd
  EXPECT_EQ(seen[6].nfds, 1);
  EXPECT_EQ(seen[7].request, 12u);  // SET_VRING_KICK with its fd
}

TEST_F(VhostUserTest, MalformedRepliesAreErrors) {
  std::thread backend([&] {
    int fd = accept(listener, nullptr, nullptr);
    recv_msg(fd);
    reply_u64(fd, 15, 0);  // answers a different request
    recv_msg(fd);
    reply_u64(fd, 1, 7, 4);  // wrong payload size
    close(fd);
  });
  auto c = VhostUserClient::connect(path);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->get_features().ok());
  EXPECT_FALSE(c->get_features().ok());
  backend.join();
  EXPECT_FALSE(c->get_features().ok());  // backend gone
}

TEST_F(VhostUserTest, TooManyRegionsOrNoBackendAreErrors) {
  std::thread backend([&] { close(accept(listener, nullptr, nullptr)); });
  auto c = VhostUserClient::connect(path);
  ASSERT_TRUE(c.ok());
  std::vector<VhostUserRegion> nine(9, VhostUserRegion{0, 0x1000, 0x1000, 0});
  EXPECT_FALSE(c->set_mem_table(nine).ok());
  backend.join();
  EXPECT_FALSE(VhostUserClient::connect("/nonexistent/socket").ok());
}

}  // namespace
}  // namespace husk::virtio
