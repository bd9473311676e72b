// husk-probe: what a hostile container tries against its sandbox (run inside a container by
// the isolation tests; static, so it runs in any image).
//   vsock [CID...]      connects to each CID (default: 1 loopback, 2 host, 3 husk's guest CID)
//                       on the agent's port 1024 and a few others, speaks HTTP/2 (gRPC's
//                       transport) and prints, per attempt,
//                         PROBE cid=C port=P result=REACHED|CLOSED|SILENT|REFUSED:<errno text>
//                       REACHED means a server answered: the agent's API was reachable.
//   flood CID PORT N    N connections as fast as possible; prints FLOOD reached=K of N
// Exit status 0 unless the probe itself could not run.
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with its SETTINGS.
const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

bool wait_for(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  return poll(&p, 1, ms) == 1;
}

std::string attempt(unsigned cid, unsigned port, int wait_ms) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return std::string("REFUSED:socket:") + strerror(errno);
  sockaddr_vm a{};
  a.svm_family = AF_VSOCK;
  a.svm_cid = cid;
  a.svm_port = port;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    std::string r = std::string("REFUSED:") + strerror(errno);
    close(fd);
    return r;
  }
  if (!wait_for(fd, POLLOUT, wait_ms)) {
    close(fd);
    return "REFUSED:connect timed out";
  }
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    close(fd);
    return std::string("REFUSED:") + strerror(err);
  }
  (void)!write(fd, kPreface, sizeof kPreface - 1);
  std::string result = "SILENT";
  if (wait_for(fd, POLLIN, wait_ms)) {
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    result = n > 0 ? "REACHED" : "CLOSED";
  }
  close(fd);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "vsock") {
    std::vector<unsigned> cids;
    for (int i = 2; i < argc; ++i) cids.push_back(static_cast<unsigned>(std::strtoul(argv[i], nullptr, 10)));
    if (cids.empty()) cids = {VMADDR_CID_LOCAL, VMADDR_CID_HOST, 3};
    for (unsigned cid : cids)
      for (unsigned port : {1024u, 1025u, 1u, 80u, 5000u, 10000u})
        std::printf("PROBE cid=%u port=%u result=%s\n", cid, port, attempt(cid, port, 2000).c_str());
    return 0;
  }
  if (mode == "flood" && argc == 5) {
    unsigned cid = static_cast<unsigned>(std::atoi(argv[2])), port = static_cast<unsigned>(std::atoi(argv[3]));
    int n = std::atoi(argv[4]), reached = 0;
    for (int i = 0; i < n; ++i) reached += attempt(cid, port, 500) == "REACHED";
    std::printf("FLOOD reached=%d of %d\n", reached, n);
    return 0;
  }
  std::fprintf(stderr, "usage: husk-probe vsock [CID...] | flood CID PORT N\n");
  return 2;
}
