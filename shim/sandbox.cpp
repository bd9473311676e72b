#include "shim/sandbox.h"

#include <fcntl.h>
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
#include "proto/agent.grpc.pb.h"
#include "shim/share.h"

extern char** environ;

namespace husk::shim {
namespace {

constexpr const char* kPidsFile = "husk-pids";
constexpr const char* kPointerFile = "husk-sandbox";  // in each bundle: the sandbox directory

Result<pid_t> spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  // A helper gets stdio and nothing else of ours (containerd's connections, other sandboxes'
  // sockets), whether or not every fd we hold is close-on-exec.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return make_error("starting %s: %s", argv[0].c_str(), strerror(rc));
  return pid;
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
    std::string fs_sock = dir_ + "/virtiofs.sock", vsock = dir_ + "/vsock.sock";
    std::string fs_log = dir_ + "/virtiofsd.log", vmm_log = dir_ + "/vmm.log", console = dir_ + "/console.log";
    auto share = Share::create(dir_);
    if (!share) return share.error().wrap("setting up the virtio-fs share: ");
    share_.emplace(std::move(share.value()));
    // sandbox=chroot keeps virtiofsd in our mount namespace: container roots attached under
    // the share after it started are visible to the guest at once.
    auto fsd = spawn({c_.virtiofsd, "--socket-path=" + fs_sock, "-o", "source=" + share_->export_dir(), "-o",
                      "cache=none", "-o", "sandbox=chroot"}, fs_log);
    if (!fsd) return fsd.error();
    add_helper(*fsd);
    if (!wait_for_socket(fs_sock, 5000, *fsd)) return make_error("virtiofsd did not start: %s", log_tail(fs_log).c_str());
    // virtiofsd makes its socket with its own mode: owner only, like every socket of ours.
    if (chmod(fs_sock.c_str(), 0600) != 0) return make_error("chmod %s: %s", fs_sock.c_str(), strerror(errno));
    phase("virtiofsd");
    // The guest's console goes to a bounded file (the newest output is kept: a failure's reason
    // is at the end), or nowhere; husk-vmm's own messages go to vmm.log.
    auto vmm = spawn({c_.vmm, "--kernel", c_.kernel, "--initrd", c_.initramfs, "--vcpus", std::to_string(c_.vcpus),
                      "--mem", std::to_string(c_.memory_mib), "--vsock", "3," + vsock, "--fs", std::string(kShareTag) + "," + fs_sock,
                      "--console", c_.console == "off" ? "none" : console, "--console-limit",
                      std::to_string(c_.console_limit)},
                     vmm_log);
    if (!vmm) return vmm.error();
    add_helper(*vmm);
    if (!wait_for_socket(vsock, 5000, *vmm)) return make_error("husk-vmm did not start: %s", log_tail(vmm_log).c_str());
    phase("vmm");
    auto ch = agent_client::connect("hvsock:" + vsock + ":1024", std::chrono::milliseconds(c_.agent_timeout_ms));
    if (!ch)
      return make_error("%s; VMM log: %s; guest console: %s", ch.error().message.c_str(), log_tail(vmm_log).c_str(),
                        log_tail(console).c_str());
    channel_ = *ch;
    phase("boot+agent");
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
    return {};
  }
  Status attach_rootfs(const std::string& id, const std::string&, const std::vector<RootfsMount>& mounts,
                       bool readonly) override {
    if (!share_) return make_error("the sandbox has no share");
    return share_->add(id, mounts, readonly);
  }
  void detach_rootfs(const std::string& id, const std::string&) override {
    if (share_) share_->remove(id);
  }
  agent::v1::Rootfs rootfs(const std::string& id, const std::string&) const override {
    agent::v1::Rootfs r;
    r.set_path(std::string(kGuestShare) + "/" + Share::guest_subpath(id));
    return r;
  }
  void stop() override {
    channel_.reset();
    stop_helpers();  // virtiofsd lets go of the share
    share_.reset();  // detaches every root and the share's layers
    remove_dir(dir_);
  }

 private:
  std::optional<Share> share_;
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
    add_helper(*pid);
    if (!wait_for_socket(sock, c_.agent_timeout_ms, *pid)) return make_error("husk-agent did not listen: %s", log_tail(log).c_str());
    auto ch = agent_client::connect("unix:" + sock, std::chrono::milliseconds(c_.agent_timeout_ms));
    if (!ch) return ch.error();
    channel_ = *ch;
    phase("agent");
    return {};
  }
  Status attach_rootfs(const std::string&, const std::string& bundle, const std::vector<RootfsMount>& mounts,
                       bool readonly) override {
    // Onto <bundle>/rootfs (containerd made it), opened without following a symlink.
    UniqueFd b(open(bundle.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!b) return make_error("bundle %s: %s", bundle.c_str(), strerror(errno));
    auto target = open_beneath(b.get(), "rootfs", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (!target) return target.error().wrap("the container root in " + bundle + ": ");
    return mount_rootfs(mounts, target->get(), readonly);
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
  remove_dir(dir);
}

Sandbox::~Sandbox() { stop(); }

void Sandbox::add_helper(pid_t pid) {
  helpers_.push_back(pid);
  UniqueFd f(open((dir_ + "/" + kPidsFile).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600));
  std::string line = std::to_string(pid) + "\n";
  if (f) (void)!::write(f.get(), line.data(), line.size());
}

void Sandbox::stop_helpers() {
  // SIGTERM first: a host agent removes its containers before exiting.
  for (auto it = helpers_.rbegin(); it != helpers_.rend(); ++it) terminate(*it);
  helpers_.clear();
  unlink((dir_ + "/" + kPidsFile).c_str());
}

void Sandbox::stop() {
  channel_.reset();
  stop_helpers();
  remove_dir(dir_);
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
