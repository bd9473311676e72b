#include "guest-agent/client/connect.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel_posix.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "common/unique_fd.h"
#include "common/sockets.h"
#include "proto/agent.grpc.pb.h"

namespace husk::agent_client {
namespace {

using Clock = std::chrono::steady_clock;

Result<UniqueFd> hybrid_vsock(const std::string& path, unsigned port, Clock::time_point deadline) {
  auto conn = connect_unix(path);
  if (!conn) return conn.error();
  UniqueFd fd = std::move(conn.value());
  std::string hello = "CONNECT " + std::to_string(port) + "\n";
  if (::send(fd.get(), hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size()))
    return make_error("%s: %s", path.c_str(), strerror(errno));
  // Byte by byte: whatever follows the newline already belongs to HTTP/2.
  std::string line;
  while (line.empty() || line.back() != '\n') {
    // At most a second per attempt: a CONNECT sent before the guest's vsock driver is up can
    // go unanswered, and a fresh attempt then succeeds.
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    pollfd p{fd.get(), POLLIN, 0};
    if (left <= 0 || poll(&p, 1, std::min(left, 1000)) <= 0) return make_error("%s: no answer to CONNECT %u", path.c_str(), port);
    char c;
    if (::read(fd.get(), &c, 1) != 1) return make_error("%s: port %u refused (is the agent up?)", path.c_str(), port);
    line += c;
    if (line.size() > 64) return make_error("%s: bad CONNECT answer", path.c_str());
  }
  if (line.rfind("OK ", 0) != 0) return make_error("%s: CONNECT %u answered \"%s\"", path.c_str(), port, line.c_str());
  return fd;
}

grpc::Status health(const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& ctx) {
  husk::agent::v1::HealthRequest req;
  husk::agent::v1::HealthResponse resp;
  auto s = husk::agent::v1::Agent::NewStub(ch)->Health(&ctx, req, &resp);
  if (s.ok() && resp.status() != husk::agent::v1::HealthResponse::SERVING)
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the agent is not serving");
  return s;
}

bool answers(const std::shared_ptr<grpc::Channel>& ch, const Probe& probe, Clock::time_point deadline, std::string* why) {
  grpc::ClientContext ctx;
  // Bounded per attempt: a stream that connected but never carries an answer (a guest that
  // reset mid-handshake) is abandoned for a fresh one instead of eating the whole timeout.
  auto left = std::clamp<Clock::duration>(deadline - Clock::now(), std::chrono::milliseconds(200), std::chrono::seconds(5));
  ctx.set_deadline(std::chrono::system_clock::now() + left);
  auto s = probe ? probe(ch, ctx) : health(ch, ctx);
  if (!s.ok()) *why = s.error_message();
  return s.ok();
}

}  // namespace

Result<std::shared_ptr<grpc::Channel>> connect(const std::string& address, std::chrono::milliseconds timeout,
                                               const Probe& probe) {
  auto deadline = Clock::now() + timeout;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  std::string last = "timed out";
  if (address.rfind("unix:", 0) == 0) {
    auto ch = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    // A connected unix socket is the agent itself: no Health round trip needed.
    if (!ch->WaitForConnected(std::chrono::system_clock::now() + timeout))
      return make_error("agent at %s: not reachable within %lld ms", address.c_str(), static_cast<long long>(timeout.count()));
    return ch;
  }
  bool hybrid = address.rfind("hvsock:", 0) == 0;
  if (!hybrid && address.rfind("vsock:", 0) != 0)
    return make_error("agent address \"%s\": expected unix:PATH, hvsock:PATH:PORT or vsock:CID:PORT", address.c_str());
  std::string rest = address.substr(hybrid ? 7 : 6);
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return make_error("agent address \"%s\" has no port", address.c_str());
  unsigned port = static_cast<unsigned>(std::strtoul(rest.c_str() + colon + 1, nullptr, 10));
  std::string where = rest.substr(0, colon);
  for (int attempt = 0;; attempt++) {
    auto fd = hybrid ? hybrid_vsock(where, port, deadline)
                     : connect_vsock(static_cast<unsigned>(std::strtoul(where.c_str(), nullptr, 10)), port);
    if (fd) {
      auto ch = grpc::CreateCustomInsecureChannelFromFd("husk-agent", fd->release(), args);
      if (answers(ch, probe, deadline, &last)) return ch;
    } else {
      last = fd.error().message;
    }
    if (Clock::now() >= deadline) break;
    // Short first retries: a guest usually answers within milliseconds of listening.
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5 << std::min(attempt, 5), 100)));
  }
  return make_error("agent at %s: %s", address.c_str(), last.c_str());
}

WarmUp::WarmUp() {
  // grpc_init too on the thread: it is a good part of the cost, and the caller must not wait.
  thread_ = std::thread([] {
    grpc_init();  // released by the destructor, after the join
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
    UniqueFd peer(sv[1]);  // open while the channel lives: its preface goes nowhere, quietly
    grpc::ChannelArguments args;
    // Creating it is the warm-up (it owns sv[0]). No GetState: a channel made from an fd is not a
    // client channel, and gRPC logs an error for every such call.
    grpc::CreateCustomInsecureChannelFromFd("husk-warm-up", sv[0], args);
  });
}

WarmUp::~WarmUp() {
  thread_.join();
  grpc_shutdown();
}

}  // namespace husk::agent_client
