// husk-agent: PID 1 of a husk microVM, or a plain process on a host (--listen unix:PATH), that
// runs OCI containers for whoever talks to it over gRPC.
#include <signal.h>
#include <linux/vm_sockets.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <grpcpp/grpcpp.h>
#include <thread>

#include "common/log.h"
#include "common/sockets.h"
#include "guest-agent/init/guest_init.h"
#include "guest-agent/ports.h"
#include "guest-agent/runtime/reaper.h"
#include "guest-agent/runtime/runtime.h"
#include "guest-agent/service/agent_service.h"
#include "guest-agent/service/listeners.h"

using namespace husk;
using namespace husk::agent;

int main(int argc, char** argv) {
  // Before any thread exists: the reaper takes SIGCHLD synchronously, main takes SIGTERM/SIGINT.
  Reaper::block_sigchld();
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigaddset(&term, SIGINT);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  log::set_program("husk-agent");
  const bool guest = getpid() == 1;

  CLI::App app{"husk-agent: runs OCI containers, served over gRPC on vsock or a unix socket"};
  std::vector<std::string> listen;
  std::string level = "info";
  unsigned log_port = 1025;
  RuntimeOptions ropts;
  app.add_option("--listen", listen, "vsock:PORT or unix:PATH (repeatable; default vsock:1024 in a guest)");
  app.add_option("--log-level", level, "error, warning, info or debug")->check(CLI::IsMember({"error", "warning", "info", "debug"}));
  app.add_option("--log-port", log_port, "guest: vsock port on the host that receives a copy of the log (0: none)");
  app.add_option("--state-dir", ropts.state_dir, "where the agent mounts container root filesystems");
  app.add_option("--cgroup-parent", ropts.cgroup_parent, "cgroup under which containers without linux.cgroupsPath go");
  bool configure_network = false;
  app.add_flag("--configure-network", configure_network,
               "on a host: accept the network calls (UpdateInterface, UpdateRoutes), which change the agent's own "
               "network namespace; only for an agent started in a namespace of its own (unshare -n)");
  app.add_flag("--ignore-missing-controllers", ropts.missing_controllers_ok,
               "host mode: skip (with a warning) limits whose cgroup v2 controller this machine lacks");
  // As init, the kernel hands over unknown command line words; ignore what we do not know.
  if (guest) app.allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  log::set_level(level == "error" ? log::Level::kError : level == "warning" ? log::Level::kWarn
                 : level == "debug" ? log::Level::kDebug : log::Level::kInfo);

  if (guest) {
    if (auto s = leave_initramfs(argv); !s) LOG_ERROR("%s (containers will run without pivot_root)", s.error().message.c_str());
    if (auto s = mount_guest_filesystems(); !s) LOG_ERROR("%s", s.error().message.c_str());
    if (auto s = bring_up_loopback(); !s) LOG_WARN("%s", s.error().message.c_str());
    if (log_port && connect_log_port(log_port)) LOG_INFO("logging to host vsock port %u too", log_port);
    if (listen.empty()) listen.push_back("vsock:" + std::to_string(agent::kAgentPort));
  } else {
    if (listen.empty()) {
      std::fprintf(stderr, "husk-agent: not PID 1: give --listen unix:PATH (host mode)\n");
      return 1;
    }
    // Orphans of containers come back to us instead of to the host's init.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  std::error_code ec;
  std::filesystem::create_directories(ropts.state_dir, ec);

  // In a VM every container gets mount and pid namespaces of its own, whatever its spec says: a
  // container sharing the agent's would see its gRPC socket and could signal PID 1.
  ropts.isolate_from_agent = guest;
  Runtime runtime(ropts);
  Reaper reaper([&runtime](pid_t pid, int status) { runtime.on_exit(pid, status); });
  ServiceOptions sopts;
  sopts.guest = guest;
  sopts.configure_network = guest || configure_network;
  sopts.on_destroy = guest ? std::function<void()>(power_off) : [] { kill(getpid(), SIGTERM); };
  AgentService service(runtime, sopts);

  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(16 << 20);
  // The sync server starts a thread per call in flight: bound them (calls beyond wait), so no
  // client, however many calls it opens, can exhaust PID 1.
  grpc::ResourceQuota quota("husk-agent");
  quota.SetMaxThreads(256);
  builder.SetResourceQuota(quota);
  std::vector<unsigned> vsock_ports;
  // vsock connections are relayed to this socket (see service/listeners.h).
  const std::string relay_socket = ropts.state_dir + "/grpc.sock";
  for (const auto& l : listen) {
    if (l.rfind("unix:", 0) == 0) {
      std::filesystem::remove(l.substr(5), ec);
      builder.AddListeningPort(l, grpc::InsecureServerCredentials());
    } else if (l.rfind("vsock:", 0) == 0) {
      if (vsock_ports.empty()) {
        std::filesystem::remove(relay_socket, ec);
        builder.AddListeningPort("unix:" + relay_socket, grpc::InsecureServerCredentials());
      }
      vsock_ports.push_back(static_cast<unsigned>(std::strtoul(l.c_str() + 6, nullptr, 10)));
    } else {
      LOG_ERROR("--listen %s: expected vsock:PORT or unix:PATH", l.c_str());
      return 1;
    }
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    LOG_ERROR("cannot start the gRPC server on %s", listen[0].c_str());
    return 1;
  }
  // gRPC creates its unix sockets with the umask's mode: the agent's API is root's alone.
  for (const auto& l : listen)
    if (l.rfind("unix:", 0) == 0 && chmod(l.substr(5).c_str(), 0600) != 0)
      LOG_WARN("chmod %s: %s", l.substr(5).c_str(), strerror(errno));
  if (!vsock_ports.empty()) (void)chmod(relay_socket.c_str(), 0600);
  std::vector<std::unique_ptr<VsockBridge>> vsock;
  for (unsigned port : vsock_ports) {
    auto l = VsockBridge::listen(port, relay_socket);
    if (!l) {
      LOG_ERROR("%s", l.error().message.c_str());
      if (guest) power_off();
      return 1;
    }
    (*l)->serve();
    vsock.push_back(std::move(l.value()));
  }
  for (const auto& l : listen) LOG_INFO("serving on %s", l.c_str());
  // The console marker tests and the shim's boot timing look for.
  if (guest) {
    std::fprintf(stderr, "HUSK_AGENT_READY\n");
    // And to the host, if it listens for it (a shim does; husk-agentctl users need not): on a
    // thread, since nothing here may wait on the host.
    std::thread([] {
      if (auto fd = connect_vsock(VMADDR_CID_HOST, agent::kReadyPort); fd) {
        static constexpr char kReady[] = "ready\n";
        (void)!::write(fd->get(), kReady, sizeof kReady - 1);
      }
    }).detach();
  }

  // On a host the shim stops us with SIGTERM. As PID 1 of a VM nobody has a reason to: the
  // host ends the sandbox with DestroySandbox. A process in the guest that signals PID 1 (only
  // one sharing its pid namespace could, and containers never do) is logged and ignored.
  for (;;) {
    siginfo_t info{};
    if (sigwaitinfo(&term, &info) < 0) continue;
    if (!guest) {
      LOG_INFO("signal %d: removing containers and exiting", info.si_signo);
      break;
    }
    LOG_WARN("ignoring signal %d from pid %d: the agent stops only when the host asks", info.si_signo, info.si_pid);
  }
  vsock.clear();
  runtime.close_oom_subscribers();
  // Calls still open (a client's stdin stream, say) are cancelled after 100 ms: the shim waits
  // for this exit on every task removal.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  runtime.destroy_all();
  if (guest) power_off();
  return 0;
}
