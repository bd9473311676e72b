#include "shim/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "guest-agent/client/connect.h"
#include "guest-agent/client/restored.h"
#include "guest-agent/ports.h"
#include "proto/agent.grpc.pb.h"
#include "shim/bundle.h"
#include "shim/jail.h"
#include "shim/network.h"
#include "shim/share.h"
#include "shim/templates.h"
#include "shim/vmm_api.h"
#include "common/mounts.h"
#include "common/sockets.h"

extern char** environ;

namespace husk::shim {
namespace {

constexpr const char* kPidsFile = "husk-pids";
constexpr const char* kPointerFile = "husk-sandbox";  // in each bundle: the sandbox directory
constexpr const char* kNetnsFile = "husk-netns";      // the pod namespace's identity, for delete

// Starts `argv` with stdin /dev/null, stdout and stderr appended to `log`, descriptors `fds`
// as 3, 4, ... and nothing else of ours (containerd's connections, other sandboxes' sockets),
// whether or not every fd we hold is close-on-exec.
Result<pid_t> spawn(const std::vector<std::string>& argv, const std::string& log, const std::vector<int>& fds = {}) {
  // Each handed-over fd is first copied above every target number, so one dup2 cannot
  // overwrite a source another still needs.
  std::vector<UniqueFd> high;
  for (int fd : fds) {
    high.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 100 + static_cast<int>(fds.size())));
    if (!high.back()) return make_error("dup: %s", strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  for (size_t i = 0; i < high.size(); ++i) posix_spawn_file_actions_adddup2(&fa, high[i].get(), 3 + static_cast<int>(i));
  posix_spawn_file_actions_addclosefrom_np(&fa, 3 + static_cast<int>(fds.size()));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // A jailed helper gets an empty environment from the jailer; an unjailed one gets ours.
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return make_error("starting %s: %s", argv[0].c_str(), strerror(rc));
  return pid;
}

// How a helper ended, in words: what the shim logs when a sandbox dies under its containers.
std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (!WIFSIGNALED(status)) return "stopped";
  int sig = WTERMSIG(status);
  if (sig == SIGSYS)
    return "was killed by SIGSYS: it made a system call outside its seccomp allowlist (a bug, or an exploited device "
           "model; the host kernel's audit log, type=1326, names the call)";
  return std::string("was killed by signal ") + std::to_string(sig) + " (" + strsignal(sig) + ")";
}

void terminate(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);  // ECHILD if already reaped: nothing to wait for
}

bool wait_for_socket(const std::string& path, unsigned ms, pid_t owner) {
  for (unsigned i = 0; i < ms / 5; i++) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return true;
    if (waitpid(owner, nullptr, WNOHANG) == owner) return false;  // died: no point waiting
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// The end of a helper's log, for error messages: the helper's own words say why it failed,
// and the sandbox directory (with the log) is gone once the failed sandbox is stopped. Reads at
// most the last 64 KiB.
std::string log_tail(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  std::streamoff size = f ? static_cast<std::streamoff>(f.tellg()) : 0;
  f.seekg(std::max<std::streamoff>(0, size - 65536));
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > 600) s = "…" + s.substr(s.size() - 600);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s.empty() ? "(empty log)" : s;
}

class VmSandbox : public Sandbox {
 public:
  static constexpr const char* kShareTag = "husk";
  static constexpr const char* kGuestShare = "/run/husk/share";  // where the agent mounts it
  VmSandbox(Config c, std::string dir) : Sandbox(std::move(c), std::move(dir)) {}

  Status start() override {
    mark_ = std::chrono::steady_clock::now();
    warm_.emplace();  // gRPC's start-up, while the jail, the helpers and the guest start
    HUSK_TRY(prepare());

    // A pod's sandbox restores a template with as many NICs as the pod has interfaces.
    const unsigned nics = net_ ? static_cast<unsigned>(net_->links().size()) : 0;
    from_template_ = c_.start == "template" && nics <= kMaxTemplateNics;
    if (c_.start == "template" && !from_template_)
      LOG_INFO("sandbox %s has %u pod interfaces: booting it (templates have at most %u)", dir_.c_str(), nics, kMaxTemplateNics);
    if (from_template_) {
      auto t = template_for(nics);
      if (!t) return t.error();
      phase(t->created ? "template created" : "template found");
      Launch l;
      l.restore = &*t;
      HUSK_TRY(launch(l));
    } else {
      HUSK_TRY(launch(Launch{}));
    }
    HUSK_TRY(wait_for_agent(from_template_));
    phase(from_template_ ? "restore+agent" : "boot+agent");
    // The share is mounted once for the sandbox; every container's root is a directory in it.
    agent::v1::CreateSandboxRequest req;
    auto* st = req.add_storages();
    st->set_source(kShareTag);
    st->set_fstype("virtiofs");
    st->set_target(kGuestShare);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(c_.agent_timeout_ms));
    agent::v1::Empty e;
    if (auto s = agent::v1::Agent::NewStub(channel_)->CreateSandbox(&ctx, req, &e); !s.ok())
      return make_error(static_cast<ErrorCode>(s.error_code()), "mounting the share in the guest: %s", s.error_message().c_str());
    phase("share");
    if (net_) {
      if (auto s = configure_guest_network(); !s) return s;
      phase("guest network");
    }
    return {};
  }
  Status attach_rootfs(const std::string& id, const std::string&, const std::vector<RootfsMount>& mounts,
                       bool readonly, const std::vector<MountPoint>& mountpoints) override {
    if (!share_) return make_error("the sandbox has no share");
    return share_->add(id, mounts, readonly, mountpoints);
  }
  void detach_rootfs(const std::string& id, const std::string&) override {
    if (share_) share_->remove(id);
  }
  agent::v1::Rootfs rootfs(const std::string& id, const std::string&) const override {
    agent::v1::Rootfs r;
    r.set_path(std::string(kGuestShare) + "/" + Share::guest_subpath(id));
    return r;
  }
  Result<std::string> guest_config(const std::string& id, const Bundle& b) override {
    if (!share_) return make_error("the sandbox has no share");
    size_t n = 0;
    return config_for_guest(b, [&](const std::string& source, bool ro) -> Result<std::string> {
      auto sub = share_->add_volume(id, n++, source, ro);
      if (!sub) return sub.error();
      return std::string(kGuestShare) + "/" + *sub;
    });
  }
  void stop() override {
    channel_.reset();
    stop_helpers();  // virtiofsd lets go of the share
    net_.reset();    // after husk-vmm: its taps and redirects leave the pod's namespace
    if (jail_) jail_->release();
    jail_.reset();
    share_.reset();  // detaches every root and the share's layers
    remove_dir(dir_);
  }

 private:
  // How launch() starts the VM: booting, or restoring a template; with the control API (and
  // the files a snapshot goes to) for the VM a template is made from.
  struct Launch {
    const TemplateFiles* restore = nullptr;
    int api_fd = -1;
    int snapshot_state_fd = -1, snapshot_mem_fd = -1;
    unsigned template_nics = 0;  // the template VM's NICs, with no host side
  };
  std::string fs_log() const { return dir_ + "/virtiofsd.log"; }
  std::string vmm_log() const { return dir_ + "/vmm.log"; }
  std::string console_log() const { return dir_ + "/console.log"; }
  std::string vsock_path() const { return dir_ + "/vsock.sock"; }

  // Starts virtiofsd on the share and husk-vmm.
  Status launch(const Launch& l) {
    std::string fs_sock = dir_ + "/virtiofs.sock";
    // Every socket is made here, in our own root-only directory, and handed over open: no
    // helper needs a path into the host, and the shim never connects to a path a helper made.
    auto fs_listen = listen_unix(fs_sock, 1);
    if (!fs_listen) return fs_listen.error().wrap("virtio-fs socket: ");
    auto fs_conn = connect_unix(fs_sock);  // queued until virtiofsd accepts; husk-vmm's end
    if (!fs_conn) return fs_conn.error().wrap("virtio-fs socket: ");
    auto vsock_listen = listen_unix(vsock_path(), 128);
    if (!vsock_listen) return vsock_listen.error().wrap("vsock socket: ");
    UniqueFd console_fd;
    if (c_.console != "off") {
      console_fd.reset(::open(console_log().c_str(), O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!console_fd) return make_error("console file %s: %s", console_log().c_str(), strerror(errno));
    }

    // sandbox=namespace: virtiofsd pivots into the share in mount, pid and network namespaces
    // of its own (mounts the shim adds to the share later still reach it: the jailer keeps it a
    // slave of the host's mounts). Unjailed, or where / is an initramfs (pivot_root refuses to
    // leave one: the test host), chroot.
    bool ns_sandbox = jail_ && !root_is_initramfs();
    std::vector<std::string> fsd_args = {"--fd=3", "-o", "source=" + share_->export_dir(), "-o", "cache=" + c_.virtiofs_cache, "-o",
                                         ns_sandbox ? "sandbox=namespace" : "sandbox=chroot", "--rlimit-nofile=4096"};
    std::vector<std::string> fsd_cmd = {c_.virtiofsd};
    fsd_cmd.insert(fsd_cmd.end(), fsd_args.begin(), fsd_args.end());
    auto fsd = spawn(jail_ ? jail_->virtiofsd_command(fsd_args, 1) : fsd_cmd, fs_log(), {fs_listen->get()});
    if (!fsd) return fsd.error();
    add_helper(*fsd, "virtiofsd");
    fs_listen->reset();
    phase("virtiofsd");

    // The guest's console goes to a bounded file (the newest output is kept: a failure's reason
    // is at the end), or nowhere; husk-vmm's own messages go to vmm.log. Descriptors are
    // numbered from 3 in the order they are added.
    bool jailed = jail_.has_value();
    std::vector<int> fds = {fs_conn->get(), vsock_listen->get()};
    auto fd_arg = [&](int fd) {
      fds.push_back(fd);
      return "fd=" + std::to_string(2 + fds.size());
    };
    // A booting guest's agent says "ready" on host port kReadyPort: husk-vmm hands that stream
    // to one end of this pair, wait_for_agent() waits on the other.
    UniqueFd vmm_ready;
    std::string vsock_arg = "3,fd=4";
    if (!l.restore) {
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return make_error("socketpair: %s", strerror(errno));
      ready_fd_.reset(pair[0]);
      vmm_ready.reset(pair[1]);
      vsock_arg += "," + std::to_string(agent::kReadyPort) + "=" + fd_arg(vmm_ready.get());
    }
    std::vector<std::string> vmm_args;
    if (l.restore) {
      std::string state = fd_arg(l.restore->state.get());
      vmm_args = {"--restore", state + "," + fd_arg(l.restore->mem.get())};
    } else {
      vmm_args = {"--kernel", jailed ? "/vmlinux" : c_.kernel, "--initrd", jailed ? "/initrd" : c_.initramfs,
                  "--vcpus", std::to_string(c_.vcpus), "--mem", std::to_string(c_.memory_mib)};
    }
    vmm_args.insert(vmm_args.end(), {"--fs", std::string(kShareTag) + ",fd=3", "--vsock", vsock_arg, "--console",
                                     console_fd ? fd_arg(console_fd.get()) : "none", "--console-limit",
                                     std::to_string(c_.console_limit)});
    if (l.api_fd >= 0) {
      vmm_args.push_back("--api");
      vmm_args.push_back(fd_arg(l.api_fd));
      snapshot_state_spec_ = fd_arg(l.snapshot_state_fd);
      snapshot_mem_spec_ = fd_arg(l.snapshot_mem_fd);
    }
    if (c_.vmm_seccomp == "log") vmm_args.push_back("--seccomp-log");
    if (c_.vmm_seccomp == "off") vmm_args.push_back("--no-seccomp");
    vmm_args.insert(vmm_args.end(), c_.vmm_args.begin(), c_.vmm_args.end());
    if (l.api_fd >= 0) {
      // The template's VM is no pod's: NICs to nowhere, with MACs the agent will replace.
      for (unsigned i = 0; i < l.template_nics; ++i) vmm_args.insert(vmm_args.end(), {"--net", "null," + template_mac(i)});
    } else if (net_) {
      // The taps live in the pod's namespace; husk-vmm only gets their fds.
      for (auto& link : net_->links()) {
        vmm_args.push_back("--net");
        vmm_args.push_back(fd_arg(link.tap_fd.get()) + "," + netlink::mac_to_string(link.pod.mac));
      }
    }
    std::vector<std::string> vmm_cmd = {c_.vmm};
    vmm_cmd.insert(vmm_cmd.end(), vmm_args.begin(), vmm_args.end());
    auto vmm = spawn(jailed ? jail_->vmm_command(vmm_args, static_cast<unsigned>(fds.size())) : vmm_cmd, vmm_log(), fds);
    if (!vmm) return vmm.error();
    add_helper(*vmm, "husk-vmm");
    phase("vmm");
    return {};
  }

  // The agent answers once the guest booted (or was restored); attempts are short so a helper
  // that died is noticed at once instead of at the deadline. A restored guest's first call is
  // Restored: every copy of a template starts with the template's CRNG state and wall clock,
  // and nothing may run in it before both are its own.
  Status wait_for_agent(bool restored = false) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(c_.agent_timeout_ms);
    if (ready_fd_) {
      // Until the guest says so (or husk-vmm is gone: the pair's other end closes). The wakeups
      // every second only look for a helper that died without closing it.
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{ready_fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000))) > 0) break;
        if (!failure().empty()) break;
      }
      ready_fd_.reset();
    }
    agent_client::Probe probe;
    if (restored) {
      auto req = agent_client::restored_request();
      if (!req) return req.error();
      probe = [req = *req](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& ctx) {
        agent::v1::Empty e;
        auto s = agent::v1::Agent::NewStub(ch)->Restored(&ctx, req, &e);
        return s.ok() ? s : grpc::Status(s.error_code(), "reseeding the restored guest: " + s.error_message());
      };
    }
    Result<std::shared_ptr<grpc::Channel>> ch = make_error("timed out");
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      ch = agent_client::connect("hvsock:" + vsock_path() + ":" + std::to_string(agent::kAgentPort),
                                 std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(3000)), probe);
      if (ch || left.count() <= 3000) break;
      if (auto dead = failure(); !dead.empty())
        return make_error("%s; VMM log: %s; virtiofsd log: %s; guest console: %s", dead.c_str(), log_tail(vmm_log()).c_str(),
                          log_tail(fs_log()).c_str(), log_tail(console_log()).c_str());
    }
    if (!ch)
      return make_error("%s; VMM log: %s; virtiofsd log: %s; guest console: %s", ch.error().message.c_str(),
                        log_tail(vmm_log()).c_str(), log_tail(fs_log()).c_str(), log_tail(console_log()).c_str());
    channel_ = *ch;
    return {};
  }

  // The jail, the pod's network and the share: what both a sandbox and a template VM need.
  Status prepare() {
    if (c_.jail) {
      auto jail = Jail::create(c_, dir_);
      if (!jail) return jail.error().wrap("setting up the jail: ");
      jail_.emplace(std::move(jail.value()));
      if (::mkdir((dir_ + "/jail").c_str(), 0700) != 0 && errno != EEXIST) return make_error("mkdir %s/jail: %s", dir_.c_str(), strerror(errno));
    } else {
      LOG_WARN("sandbox %s: the jail is off (shim config \"jail\": false): husk-vmm and virtiofsd run as root with every "
               "capability, in the host's namespaces and the shim's cgroup",
               dir_.c_str());
    }
    if (!c_.netns_path.empty()) {
      auto net = PodNetwork::attach(c_.netns_path);
      if (!net) return net.error();
      net_.emplace(std::move(net.value()));
      std::ofstream(dir_ + "/" + kNetnsFile) << net_->identity() << "\n";
      phase("network");
    }
    auto share = Share::create(dir_);
    if (!share) return share.error().wrap("setting up the virtio-fs share: ");
    share_.emplace(std::move(share.value()));
    return {};
  }

 public:
  // For `husk template create`: the template for this config, made now if there is none.
  Result<bool> ensure_template(unsigned nics) {
    HUSK_TRY(prepare());
    auto t = template_for(nics);
    if (!t) return t.error();
    return t->created;
  }

 private:
  // The template for a sandbox with `nics` pod interfaces, made by this sandbox if there is none.
  Result<TemplateFiles> template_for(unsigned nics) {
    return get_template(
        c_, [this, nics](int state_fd, int mem_fd) { return make_template(state_fd, mem_fd, nics); }, nics);
  }

  // The template: this sandbox's jail and share, a VM booted with the control API, paused once
  // its agent answers (before the share is mounted: no FUSE session to lose) and written to the
  // two files; then stopped, leaving the sandbox to restore it.
  Status make_template(int state_fd, int mem_fd, unsigned nics) {
    std::string api = dir_ + "/api.sock";
    auto api_listen = listen_unix(api, 1);
    if (!api_listen) return api_listen.error().wrap("API socket: ");
    Launch l;
    l.api_fd = api_listen->get();
    l.snapshot_state_fd = state_fd;
    l.snapshot_mem_fd = mem_fd;
    l.template_nics = nics;
    Status s = launch(l);
    api_listen->reset();
    if (s) s = wait_for_agent();
    if (s) phase("template boot+agent");
    if (s) s = vmm_api_call(api, "PATCH", "/vm", R"({"state": "Paused"})", c_.agent_timeout_ms);
    if (s)
      s = vmm_api_call(api, "PUT", "/snapshot/create",
                       nlohmann::json{{"snapshot_path", snapshot_state_spec_}, {"mem_file_path", snapshot_mem_spec_}}.dump(),
                       c_.agent_timeout_ms);
    if (s) phase("template snapshot");
    channel_.reset();
    stop_helpers();
    ::unlink(api.c_str());
    return s;
  }

  // The guest's NICs get the pod interfaces' names, addresses, routes and neighbours.
  Status configure_guest_network() {
    auto stub = agent::v1::Agent::NewStub(channel_);
    auto ctx = [this] {
      auto c = std::make_unique<grpc::ClientContext>();
      c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(c_.agent_timeout_ms));
      return c;
    };
    unsigned nic = 0;
    for (auto want : net_->interfaces_for_guest()) {
      // A restored template's NICs still have the template's MACs.
      if (from_template_) want.set_guest_mac(template_mac(nic));
      ++nic;
      agent::v1::Interface got;
      if (auto s = stub->UpdateInterface(ctx().get(), want, &got); !s.ok())
        return make_error(static_cast<ErrorCode>(s.error_code()), "configuring %s in the guest: %s", want.name().c_str(),
                          s.error_message().c_str());
    }
    agent::v1::Routes got;
    if (auto s = stub->UpdateRoutes(ctx().get(), net_->routes_for_guest(), &got); !s.ok())
      return make_error(static_cast<ErrorCode>(s.error_code()), "adding the pod's routes in the guest: %s", s.error_message().c_str());
    return {};
  }

  std::optional<Jail> jail_;
  std::optional<PodNetwork> net_;
  std::optional<Share> share_;
  std::optional<agent_client::WarmUp> warm_;
  std::string snapshot_state_spec_, snapshot_mem_spec_;  // "fd=N" in the template VM
  bool from_template_ = false;                           // this sandbox restored a template
  UniqueFd ready_fd_;  // the shim's end of the agent's "ready" stream, while booting
};

class HostSandbox : public Sandbox {
 public:
  HostSandbox(Config c, std::string dir) : Sandbox(std::move(c), std::move(dir)) {}

  Status start() override {
    mark_ = std::chrono::steady_clock::now();
    std::string sock = dir_ + "/agent.sock", log = dir_ + "/agent.log";
    auto pid = spawn({c_.agent, "--listen", "unix:" + sock, "--state-dir", dir_ + "/agent-state", "--cgroup-parent",
                      "/husk-shim", "--ignore-missing-controllers", "--log-level", c_.log_level}, log);
    if (!pid) return pid.error();
    add_helper(*pid, "husk-agent");
    if (!wait_for_socket(sock, c_.agent_timeout_ms, *pid)) return make_error("husk-agent did not listen: %s", log_tail(log).c_str());
    auto ch = agent_client::connect("unix:" + sock, std::chrono::milliseconds(c_.agent_timeout_ms));
    if (!ch) return ch.error();
    channel_ = *ch;
    phase("agent");
    return {};
  }
  Status attach_rootfs(const std::string&, const std::string& bundle, const std::vector<RootfsMount>& mounts,
                       bool readonly, const std::vector<MountPoint>& mountpoints) override {
    // Onto <bundle>/rootfs (containerd made it), opened without following a symlink.
    UniqueFd b(open(bundle.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!b) return make_error("bundle %s: %s", bundle.c_str(), strerror(errno));
    auto target = open_beneath(b.get(), "rootfs", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!target) return target.error().wrap("the container root in " + bundle + ": ");
    return mount_rootfs(mounts, target->get(), readonly, mountpoints);
  }
  void detach_rootfs(const std::string&, const std::string& bundle) override { unmount_all(bundle + "/rootfs"); }
  agent::v1::Rootfs rootfs(const std::string&, const std::string& bundle) const override {
    agent::v1::Rootfs r;
    r.set_path(bundle + "/rootfs");
    return r;
  }
};

}  // namespace

std::string short_hash(const std::string& key) {
  uint64_t h = 14695981039346656037ULL;  // FNV-1a offset basis
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string Sandbox::dir_for(const std::string& root, const std::string& ns, const std::string& sandbox_id) {
  return root + "/" + short_hash(ns + "/" + sandbox_id);
}

void Sandbox::cleanup_after_crash(const std::string& bundle, const std::string& id) {
  unmount_all(bundle + "/rootfs");
  std::string dir;
  std::ifstream(bundle + "/" + kPointerFile) >> dir;
  unlink((bundle + "/" + kPointerFile).c_str());
  // Only what write_pointer wrote: an absolute path to a sandbox directory.
  if (dir.empty() || dir[0] != '/' || dir.find("/..") != std::string::npos) return;
  {
    std::ifstream f(dir + "/" + kPidsFile);
    pid_t pid;
    while (f >> pid)
      if (pid > 1) kill(pid, SIGKILL);
  }
  unlink((dir + "/" + kPidsFile).c_str());
  // Other containers of the pod may still have roots in the share: their deletes finish it.
  Share::cleanup(dir, id);
  Jail::cleanup(dir);
  if (auto b = load_bundle(bundle); b && !b->netns_path.empty()) {
    std::string identity;
    std::ifstream(dir + "/" + kNetnsFile) >> identity;
    if (auto s = PodNetwork::detach(b->netns_path, identity); !s) LOG_WARN("%s", s.error().message.c_str());
  }
  remove_dir(dir);
}

Sandbox::~Sandbox() { stop(); }

void Sandbox::add_helper(pid_t pid, const char* name) {
  std::lock_guard lk(helpers_mu_);
  helpers_.push_back(Helper{pid, name, false, 0, ""});
  UniqueFd f(open((dir_ + "/" + kPidsFile).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
  std::string line = std::to_string(pid) + "\n";
  if (f) (void)!::write(f.get(), line.data(), line.size());
}

void Sandbox::stop_helpers() {
  // SIGTERM first: a host agent removes its containers before exiting.
  std::lock_guard lk(helpers_mu_);
  for (auto it = helpers_.rbegin(); it != helpers_.rend(); ++it)
    if (!it->exited) terminate(it->pid);
  helpers_.clear();
  unlink((dir_ + "/" + kPidsFile).c_str());
}

void Sandbox::stop() {
  channel_.reset();
  stop_helpers();
  remove_dir(dir_);
}

std::string Sandbox::failure() {
  std::lock_guard lk(helpers_mu_);
  for (auto& h : helpers_) {
    int status = 0;
    if (!h.exited && ::waitpid(h.pid, &status, WNOHANG) == h.pid) {
      h.exited = true;
      h.status = status;
      h.how = h.name + " (pid " + std::to_string(h.pid) + ") " + describe_exit(status);
    }
  }
  // The cause, not a consequence: when husk-vmm is killed, virtiofsd loses its vhost-user peer
  // and exits cleanly, perhaps first. A helper that died by a signal or failed is the reason.
  const Helper* first = nullptr;
  for (const auto& h : helpers_) {
    if (!h.exited) continue;
    if (WIFSIGNALED(h.status) || (WIFEXITED(h.status) && WEXITSTATUS(h.status) != 0)) return h.how;
    if (!first) first = &h;
  }
  return first ? first->how : "";
}

void Sandbox::phase(const char* name) {
  auto now = std::chrono::steady_clock::now();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%s %.1f ms", timings_.empty() ? "" : ", ", name,
                std::chrono::duration<double, std::milli>(now - mark_).count());
  timings_ += buf;
  mark_ = now;
}

void Sandbox::remove_dir(const std::string& dir) {
  // Only once the share is gone (no container root left in it); then what the shim made:
  // sockets, logs, the host agent's state, all below a directory only root can write.
  struct stat st;
  if (lstat((dir + "/mounts").c_str(), &st) == 0 || lstat((dir + "/shared").c_str(), &st) == 0) return;
  std::string parent = dir.substr(0, dir.rfind('/')), name = dir.substr(dir.rfind('/') + 1);
  UniqueFd p(open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (p) (void)remove_tree(p.get(), name);
}

void Sandbox::write_pointer(const std::string& bundle, const std::string& dir) {
  std::ofstream(bundle + "/" + kPointerFile) << dir << "\n";
}

Result<bool> create_template(const Config& c, unsigned nics) {
  if (c.mode != "vm") return make_error(ErrorCode::kInvalidArgument, "templates are for \"mode\": \"vm\" (this config has \"%s\")", c.mode.c_str());
  const std::string dir = c.state_dir + "/template-" + std::to_string(::getpid());
  auto sb = make_sandbox(c, dir);
  if (!sb) return sb.error();
  auto* vm = static_cast<VmSandbox*>(sb->get());
  auto created = vm->ensure_template(nics);
  vm->stop();
  return created;
}

Result<std::unique_ptr<Sandbox>> make_sandbox(const Config& c, const std::string& dir) {
  // state_dir and every sandbox directory are root's alone (0700): sockets, logs, the share.
  std::string parent = dir.substr(0, dir.rfind('/'));
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (chmod(parent.c_str(), 0700) != 0) return make_error("state directory %s: %s", parent.c_str(), strerror(errno));
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return make_error("mkdir %s: %s", dir.c_str(), strerror(errno));
  if (chmod(dir.c_str(), 0700) != 0) return make_error("sandbox directory %s: %s", dir.c_str(), strerror(errno));
  if (c.mode == "host") return std::unique_ptr<Sandbox>(std::make_unique<HostSandbox>(c, dir));
  return std::unique_ptr<Sandbox>(std::make_unique<VmSandbox>(c, dir));
}

}  // namespace husk::shim
