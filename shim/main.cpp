// containerd-shim-husk-v2: containerd's runtime v2 shim for husk (shared/docs/containerd-shim-v2.md).
//   start  — bind the task socket, fork the long-lived server, print its address
//   delete — clean up after a shim that is gone; print a DeleteResponse
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "common/log.h"
#include "common/sockets.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"
#include "shim/bundle.h"
#include "shim/config.h"
#include "shim/events.h"
#include "shim/sandbox.h"
#include "shim/seccomp_filter.h"
#include "shim/task_service.h"
#include "shim/ttrpc/server.h"

using namespace husk;

namespace {

struct Args {
  std::map<std::string, std::string> flags;
  std::string action;
  std::string get(const std::string& k) const {
    auto it = flags.find(k);
    return it == flags.end() ? "" : it->second;
  }
};

// Go's flag package: "-name value", "-name=value", "--name value"; booleans take no value.
Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string s = argv[i];
    if (s.size() > 1 && s[0] == '-') {
      std::string name = s.substr(s[1] == '-' ? 2 : 1);
      if (auto eq = name.find('='); eq != std::string::npos) {
        a.flags[name.substr(0, eq)] = name.substr(eq + 1);
      } else if (name == "debug" || name == "v") {
        a.flags[name] = "true";
      } else if (i + 1 < argc) {
        a.flags[name] = argv[++i];
      }
    } else {
      a.action = s;
    }
  }
  return a;
}

// The pod a container belongs to: CRI puts io.kubernetes.cri.sandbox-id on the sandbox and on
// every container of the pod; one shim (and one VM) serves them all. Anything else is its own
// sandbox (a bundle that does not load is reported by Create, with the reason).
std::string grouping(const Args& a) {
  char cwd[4096];
  auto bundle = shim::load_bundle(getcwd(cwd, sizeof cwd) ? cwd : ".");  // start runs in the bundle directory
  if (bundle && !bundle->sandbox_id.empty()) return bundle->sandbox_id;
  return a.get("id");
}

// A short, stable socket name per (containerd, namespace, sandbox).
std::string socket_path(const Args& a, const std::string& group) {
  return "/run/containerd/s/husk-" + shim::short_hash(a.get("address") + "/" + a.get("namespace") + "/" + group);
}

void write_address(const std::string& address) {
  // containerd re-reads the address after a restart: write it atomically.
  std::ofstream("address.tmp") << address;
  std::rename("address.tmp", "address");
  std::fputs(address.c_str(), stdout);
}

int serve(const Args& a, int listen_fd);

int start(const Args& a) {
  std::string group = grouping(a);
  std::string path = socket_path(a, group);
  std::string address = "unix://" + path;
  std::filesystem::create_directories("/run/containerd/s");
  // A later container of a pod: its sandbox's shim is already serving.
  if (auto fd = connect_unix(path); fd) {
    write_address(address);
    return 0;
  }
  auto listener = listen_unix(path, 16);  // replaces a stale socket whose shim is gone
  if (!listener) {
    std::fprintf(stderr, "containerd-shim-husk-v2: %s\n", listener.error().message.c_str());
    return 1;
  }
  int fd = listener->get();
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    // The server: detached from containerd's pipes (containerd reads our stdout to EOF).
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(null, 0);
    dup2(null, 1);
    int log = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // the FIFO containerd opened in the bundle
    dup2(log >= 0 ? log : null, 2);
    // No exec: this process has no threads yet and has loaded everything the server needs;
    // a second exec of this binary (some 60 shared libraries) is a visible part of a start.
    Args server = a;
    server.flags["id"] = group;
    std::exit(serve(server, fd));
  }
  write_address(address);
  return 0;
}

int del(const Args& a) {
  std::string bundle = a.get("bundle");
  if (bundle.empty()) {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd)) bundle = cwd;
  }
  // containerd runs `delete` whenever its connection to a shim closes, also after a clean
  // Delete and for every container of a pod. While the sandbox's shim still serves, the
  // container was deleted through it (or will be): nothing to clean. Otherwise whatever the
  // dead server left behind goes: helpers and this container's root mount.
  std::string address;
  std::ifstream(bundle + "/address") >> address;
  if (address.rfind("unix://", 0) == 0) address = address.substr(7);
  if (address.empty() || !connect_unix(address)) shim::Sandbox::cleanup_after_crash(bundle, a.get("id"));
  containerd::task::v2::DeleteResponse resp;
  resp.set_exit_status(128 + SIGKILL);
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  resp.mutable_exited_at()->set_seconds(now.tv_sec);
  resp.mutable_exited_at()->set_nanos(static_cast<int32_t>(now.tv_nsec));
  std::string out = resp.SerializeAsString();
  fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int serve(const Args& a, int listen_fd) {
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  log::set_program("containerd-shim-husk-v2");
  if (!a.get("debug").empty()) log::set_level(log::Level::kDebug);
  // Before any thread exists, so every thread (and every helper, through exec) has it.
  if (auto s = shim::install_shim_filter(); !s) {
    LOG_ERROR("seccomp: %s", s.error().message.c_str());
    return 1;
  }
  std::string ttrpc_address = getenv("TTRPC_ADDRESS") ? getenv("TTRPC_ADDRESS") : "";
  if (ttrpc_address.rfind("unix://", 0) == 0) ttrpc_address = ttrpc_address.substr(7);
  shim::Publisher events(ttrpc_address, a.get("namespace"));
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
  ttrpc::Server server(io);
  shim::TaskService tasks(a.get("namespace"), a.get("id"), &events, [&io] {
    // After the Shutdown answer has gone out.
    std::thread([&io] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      io.stop();
    }).detach();
  });
  tasks.register_with(server);
  sockaddr_un bound{};
  socklen_t bound_len = sizeof bound;
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  if (auto s = server.adopt(listen_fd); !s) {
    LOG_ERROR("%s", s.error().message.c_str());
    return 1;
  }
  server.start();
  io.run();
  server.stop();
  // Nobody serves here any more; a later `start` for this sandbox binds afresh.
  if (bound.sun_path[0] == '/') unlink(bound.sun_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.action == "start") return start(a);
  if (a.action == "delete") return del(a);
  std::fprintf(stderr, "usage: containerd-shim-husk-v2 -namespace NS -address ADDR -id ID start|delete\n");
  return 1;
}
