// The ttrpc server and client over a real unix socket: framing, dispatch, concurrency and every
// protocol error a client can cause.
#include <gtest/gtest.h>

#include <atomic>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <chrono>
#include <thread>

#include "proto/ttrpc.pb.h"
#include "shim/ttrpc/client.h"
#include "shim/ttrpc/frame.h"
#include "shim/ttrpc/server.h"

namespace husk::ttrpc {
namespace {

using namespace std::chrono_literals;

TEST(TtrpcFrame, HeaderIsBigEndianLengthIdTypeFlags) {
  auto h = encode_header({0x01020304, 0x0a0b0c0d, kTypeRequest, 0});
  EXPECT_EQ(std::vector<uint8_t>(h.begin(), h.end()),
            (std::vector<uint8_t>{1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 1, 0}));
  FrameHeader d = decode_header(h.data());
  EXPECT_EQ(d.length, 0x01020304u);
  EXPECT_EQ(d.stream_id, 0x0a0b0c0du);
  EXPECT_EQ(d.type, kTypeRequest);
  EXPECT_EQ(frame(7, kTypeResponse, "abc").size(), kHeaderSize + 3);
}

class TtrpcServer : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = "/tmp/husk-ttrpc-test-" + std::to_string(getpid()) + ".sock";
    server_ = std::make_unique<Server>(io_);
    server_->register_method("test.Echo", "Echo", [](const std::string& p, const CallContext&) { return Reply::ok(p); });
    server_->register_method("test.Echo", "Slow", [](const std::string& p, const CallContext&) {
      std::this_thread::sleep_for(400ms);
      return Reply::ok("slow:" + p);
    });
    server_->register_method("test.Echo", "Fail", [](const std::string&, const CallContext&) {
      return Reply::error(wire(ErrorCode::kNotFound), "no such thing");
    });
    server_->register_method("test.Echo", "Deadline", [](const std::string&, const CallContext& ctx) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - std::chrono::steady_clock::now());
      return Reply::ok(std::to_string(left.count()));
    });
    ASSERT_TRUE(server_->listen(path_));
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    server_->stop();
    io_.stop();
    thread_.join();
    unlink(path_.c_str());
  }

  std::unique_ptr<Client> client() {
    auto c = Client::connect(path_);
    EXPECT_TRUE(c) << c.error().message;
    return std::move(c.value());
  }

  // A raw connection for frames no well-behaved client sends.
  int raw() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path_.data(), path_.size());
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }
  static void send_all(int fd, const std::string& s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }
  static std::pair<FrameHeader, ::ttrpc::Response> read_response(int fd) {
    uint8_t hdr[kHeaderSize];
    size_t got = 0;
    while (got < sizeof hdr) {
      ssize_t n = ::read(fd, hdr + got, sizeof hdr - got);
      if (n <= 0) return {};
      got += static_cast<size_t>(n);
    }
    FrameHeader h = decode_header(hdr);
    std::string data(h.length, '\0');
    got = 0;
    while (got < data.size()) {
      ssize_t n = ::read(fd, data.data() + got, data.size() - got);
      if (n <= 0) return {};
      got += static_cast<size_t>(n);
    }
    ::ttrpc::Response r;
    r.ParseFromString(data);
    return {h, r};
  }
  static std::string request(const std::string& service, const std::string& method, const std::string& payload) {
    ::ttrpc::Request r;
    r.set_service(service);
    r.set_method(method);
    r.set_payload(payload);
    return r.SerializeAsString();
  }

  std::string path_;
  boost::asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(TtrpcServer, EchoesAndReportsErrorsWithCodes) {
  auto c = client();
  auto r = c->call("test.Echo", "Echo", "hello");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->code, kOk);
  EXPECT_EQ(r->payload, "hello");
  r = c->call("test.Echo", "Fail", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire(ErrorCode::kNotFound));
  EXPECT_EQ(r->message, "no such thing");
}

TEST_F(TtrpcServer, UnknownServiceAndMethodAreUnimplemented) {
  auto c = client();
  auto r = c->call("test.Echo", "Nope", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire(ErrorCode::kUnimplemented));
  EXPECT_NE(r->message.find("method Nope"), std::string::npos);
  r = c->call("containerd.task.v3.Task", "Create", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire(ErrorCode::kUnimplemented));
  EXPECT_NE(r->message.find("service containerd.task.v3.Task"), std::string::npos);
}

TEST_F(TtrpcServer, ConcurrentCallsAnswerOutOfOrder) {
  auto c = client();
  std::string slow;
  std::atomic<bool> slow_done{false};
  auto t0 = std::chrono::steady_clock::now();
  std::thread t([&] {
    auto r = c->call("test.Echo", "Slow", "a");
    if (r) slow = r->payload;
    slow_done = true;
  });
  std::this_thread::sleep_for(50ms);
  auto r = c->call("test.Echo", "Echo", "b");
  auto fast_done = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload, "b");
  EXPECT_FALSE(slow_done.load());  // the slow call is still running: answers left in finishing order
  EXPECT_LT(fast_done, 350ms);
  t.join();
  EXPECT_EQ(slow, "slow:a");
}

TEST_F(TtrpcServer, DeadlineReachesTheHandler) {
  auto c = client();
  auto r = c->call("test.Echo", "Deadline", "", 2000ms);
  ASSERT_TRUE(r);
  long left = std::stol(r->payload);
  EXPECT_GT(left, 1000);
  EXPECT_LE(left, 2000);
}

TEST_F(TtrpcServer, PartialFramesAreReassembled) {
  int fd = raw();
  std::string f = frame(1, kTypeRequest, request("test.Echo", "Echo", "pieces"));
  for (size_t i = 0; i < f.size(); i += 3) {
    send_all(fd, f.substr(i, 3));
    std::this_thread::sleep_for(2ms);
  }
  auto [h, resp] = read_response(fd);
  EXPECT_EQ(h.stream_id, 1u);
  EXPECT_EQ(h.type, kTypeResponse);
  EXPECT_EQ(resp.status().code(), kOk);
  EXPECT_EQ(resp.payload(), "pieces");
  close(fd);
}

TEST_F(TtrpcServer, EvenStreamIdsAreRejected) {
  int fd = raw();
  send_all(fd, frame(2, kTypeRequest, request("test.Echo", "Echo", "x")));
  auto [h, resp] = read_response(fd);
  EXPECT_EQ(h.stream_id, 2u);
  EXPECT_EQ(resp.status().code(), wire(ErrorCode::kInvalidArgument));
  send_all(fd, frame(0, kTypeRequest, request("test.Echo", "Echo", "x")));
  auto [h0, resp0] = read_response(fd);
  EXPECT_EQ(resp0.status().code(), wire(ErrorCode::kInvalidArgument));
  // The connection still serves well-formed requests.
  send_all(fd, frame(3, kTypeRequest, request("test.Echo", "Echo", "still here")));
  auto [h3, resp3] = read_response(fd);
  EXPECT_EQ(h3.stream_id, 3u);
  EXPECT_EQ(resp3.payload(), "still here");
  close(fd);
}

TEST_F(TtrpcServer, OversizedFramesGetResourceExhaustedAndTheStreamStaysInSync) {
  int fd = raw();
  std::string big(kMaxData + 1, 'z');
  std::thread w([&] { send_all(fd, frame(5, kTypeRequest, big)); });
  auto [h, resp] = read_response(fd);
  w.join();
  EXPECT_EQ(h.stream_id, 5u);
  EXPECT_EQ(resp.status().code(), wire(ErrorCode::kResourceExhausted));
  send_all(fd, frame(7, kTypeRequest, request("test.Echo", "Echo", "after")));
  auto [h7, resp7] = read_response(fd);
  EXPECT_EQ(h7.stream_id, 7u);
  EXPECT_EQ(resp7.payload(), "after");
  close(fd);
}

TEST_F(TtrpcServer, GarbageRequestsAreInvalidArgument) {
  int fd = raw();
  send_all(fd, frame(9, kTypeRequest, std::string("\xff\xff\xff\xff\xff", 5)));
  auto [h, resp] = read_response(fd);
  EXPECT_EQ(h.stream_id, 9u);
  EXPECT_EQ(resp.status().code(), wire(ErrorCode::kInvalidArgument));
  close(fd);
}

TEST_F(TtrpcServer, AClientVanishingMidCallHarmsNothing) {
  int fd = raw();
  send_all(fd, frame(1, kTypeRequest, request("test.Echo", "Slow", "bye")));
  close(fd);  // gone before the answer
  // Half a header, then gone.
  int fd2 = raw();
  send_all(fd2, std::string("\x00\x00\x00", 3));
  close(fd2);
  std::this_thread::sleep_for(500ms);  // the slow handler answers into a closed connection
  auto c = client();
  auto r = c->call("test.Echo", "Echo", "fine");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload, "fine");
  EXPECT_EQ(server_->connections(), 1u);
}

}  // namespace
}  // namespace husk::ttrpc
