// husk-vsock-test: vsock echo tests for both ends of husk's hybrid vsock.
//   guest-echo PORT COUNT              (guest) serve COUNT echo connections on vsock PORT
//   guest-client PORT STREAMS BYTES    (guest) STREAMS parallel echo round trips to host PORT
//   host-echo PATH                     (host)  echo server on unix socket PATH (PATH = UDS_PORT)
//   host-client UDS PORT STREAMS BYTES (host)  round trips to guest PORT via "CONNECT PORT\n",
//                                              retrying until the guest listens (60 s)
//   guest-sink PORT                    (guest) accept one stream, read it to EOF, close
//   host-source UDS|vsock:CID PORT BYTES (host) stream BYTES to the guest's sink and report MB/s
//                                              (through husk's unix socket, or AF_VSOCK for
//                                              vhost-vsock peers), connect to sink close
// Every stream sends BYTES of a stream-specific pattern, reads the echo and compares it.
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace {

uint8_t pattern(size_t stream, size_t i) { return static_cast<uint8_t>((i * 131 + stream * 7 + (i >> 12)) & 0xff); }

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w, n -= static_cast<size_t>(w);
  }
  return true;
}

void echo(int fd) {
  std::vector<uint8_t> buf(65536);
  ssize_t n;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0)
    if (!write_all(fd, buf.data(), static_cast<size_t>(n))) break;
  ::close(fd);
}

// Sends the pattern from one thread while reading the echo on this one.
bool round_trip(int fd, size_t stream, size_t bytes) {
  std::thread sender([&] {
    std::vector<uint8_t> chunk(32768);
    for (size_t off = 0; off < bytes;) {
      size_t n = std::min(chunk.size(), bytes - off);
      for (size_t i = 0; i < n; ++i) chunk[i] = pattern(stream, off + i);
      if (!write_all(fd, chunk.data(), n)) break;
      off += n;
    }
    ::shutdown(fd, SHUT_WR);
  });
  std::vector<uint8_t> buf(65536);
  size_t got = 0;
  bool same = true;
  ssize_t n;
  while (got < bytes && (n = ::read(fd, buf.data(), buf.size())) > 0) {
    for (ssize_t i = 0; i < n; ++i) same = same && buf[static_cast<size_t>(i)] == pattern(stream, got + static_cast<size_t>(i));
    got += static_cast<size_t>(n);
  }
  sender.join();
  ::close(fd);
  if (got != bytes || !same) std::fprintf(stderr, "stream %zu: got %zu of %zu bytes, %s\n", stream, got, bytes, same ? "equal" : "DIFFERENT");
  return got == bytes && same;
}

int unix_connect_handshake(const char* uds, unsigned port) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, uds, sizeof a.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      std::string req = "CONNECT " + std::to_string(port) + "\n";
      write_all(fd, reinterpret_cast<const uint8_t*>(req.data()), req.size());
      std::string line;
      char c;
      while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
      if (line.rfind("OK ", 0) == 0) return fd;
    }
    ::close(fd);  // refused: the guest does not listen yet
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return -1;
}

int parallel(size_t streams, size_t bytes, const std::function<int()>& connect_fn) {
  std::atomic<size_t> ok{0};
  std::vector<std::thread> ts;
  for (size_t s = 0; s < streams; ++s)
    ts.emplace_back([&, s] {
      int fd = connect_fn();
      if (fd >= 0 && round_trip(fd, s, bytes)) ++ok;
    });
  for (auto& t : ts) t.join();
  return static_cast<int>(ok.load());
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "guest-echo" && argc == 4) {
    int l = ::socket(AF_VSOCK, SOCK_STREAM, 0);
    sockaddr_vm a{};
    a.svm_family = AF_VSOCK;
    a.svm_cid = VMADDR_CID_ANY;
    a.svm_port = static_cast<unsigned>(std::atoi(argv[2]));
    if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) || ::listen(l, 64)) return std::perror("vsock listen"), 1;
    std::vector<std::thread> ts;
    for (int i = 0, n = std::atoi(argv[3]); i < n; ++i) {
      int fd = ::accept(l, nullptr, nullptr);
      if (fd < 0) return 1;
      ts.emplace_back(echo, fd);
    }
    for (auto& t : ts) t.join();
    return 0;
  }
  if (mode == "guest-sink" && argc == 3) {
    int l = ::socket(AF_VSOCK, SOCK_STREAM, 0);
    sockaddr_vm a{};
    a.svm_family = AF_VSOCK;
    a.svm_cid = VMADDR_CID_ANY;
    a.svm_port = static_cast<unsigned>(std::atoi(argv[2]));
    if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) || ::listen(l, 1)) return std::perror("vsock listen"), 1;
    int fd = ::accept(l, nullptr, nullptr);
    std::vector<uint8_t> buf(1 << 16);
    size_t total = 0;
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) total += static_cast<size_t>(n);
    std::printf("GUEST_SINK_BYTES=%zu\n", total);
    ::close(fd);
    return 0;
  }
  if (mode == "host-source" && argc == 5) {
    std::string target = argv[2];
    unsigned port = static_cast<unsigned>(std::atoi(argv[3]));
    size_t bytes = std::strtoul(argv[4], nullptr, 10);
    int fd = -1;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (fd < 0 && std::chrono::steady_clock::now() < deadline) {
      if (target.rfind("vsock:", 0) == 0) {
        fd = ::socket(AF_VSOCK, SOCK_STREAM, 0);
        sockaddr_vm a{};
        a.svm_family = AF_VSOCK;
        a.svm_cid = static_cast<unsigned>(std::atoi(target.c_str() + 6));
        a.svm_port = port;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ::close(fd), fd = -1;
      } else {
        fd = unix_connect_handshake(target.c_str(), port);
      }
      if (fd < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (fd < 0) return std::fprintf(stderr, "host-source: cannot connect\n"), 1;
    std::vector<uint8_t> buf(1 << 16, 0x5a);
    auto t0 = std::chrono::steady_clock::now();
    for (size_t off = 0; off < bytes; off += buf.size())
      if (!write_all(fd, buf.data(), std::min(buf.size(), bytes - off))) return 1;
    ::shutdown(fd, SHUT_WR);
    char c;
    while (::read(fd, &c, 1) > 0) {
    }  // the sink closes once it has read everything
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("HOST_VSOCK_MBPS=%.1f\n", static_cast<double>(bytes) / s / 1048576.0);
    ::close(fd);
    return 0;
  }
  if (mode == "guest-client" && argc == 5) {
    unsigned port = static_cast<unsigned>(std::atoi(argv[2]));
    int ok = parallel(std::strtoul(argv[3], nullptr, 10), std::strtoul(argv[4], nullptr, 10), [port] {
      int fd = ::socket(AF_VSOCK, SOCK_STREAM, 0);
      sockaddr_vm a{};
      a.svm_family = AF_VSOCK;
      a.svm_cid = VMADDR_CID_HOST;
      a.svm_port = port;
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) { std::perror("vsock connect"); ::close(fd); return -1; }
      return fd;
    });
    std::printf("GUEST_CLIENT_OK=%d\n", ok);
    return 0;
  }
  if (mode == "host-echo" && argc == 3) {
    int l = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, argv[2], sizeof a.sun_path - 1);
    ::unlink(argv[2]);
    if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) || ::listen(l, 64)) return std::perror("unix listen"), 1;
    for (;;) {
      int fd = ::accept(l, nullptr, nullptr);
      if (fd >= 0) std::thread(echo, fd).detach();
    }
  }
  if (mode == "host-client" && argc == 6) {
    const char* uds = argv[2];
    unsigned port = static_cast<unsigned>(std::atoi(argv[3]));
    int ok = parallel(std::strtoul(argv[4], nullptr, 10), std::strtoul(argv[5], nullptr, 10),
                      [uds, port] { return unix_connect_handshake(uds, port); });
    std::printf("HOST_CLIENT_OK=%d\n", ok);
    return 0;
  }
  std::fprintf(stderr, "usage: see the comment at the top of vsock_test.cpp\n");
  return 2;
}
