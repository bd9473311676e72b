#include "shim/sandbox.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/log.h"
#include "guest-agent/client/connect.h"

extern char** environ;

namespace husk::shim {
namespace {

Result<pid_t> spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return make_error("starting %s: %s", argv[0].c_str(), strerror(rc));
  return pid;
}

void record(const std::string& bundle, pid_t pid) {
  std::ofstream(bundle + "/husk-pids", std::ios::app) << pid << "\n";
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

bool wait_for_socket(const std::string& path, int ms) {
  for (int i = 0; i < ms / 5; i++) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

class VmSandbox : public Sandbox {
 public:
  VmSandbox(Config c, std::string bundle, std::string id) : c_(std::move(c)), bundle_(std::move(bundle)), id_(std::move(id)) {}
  ~VmSandbox() override { stop(); }

  Status start() override {
    std::string fs_sock = bundle_ + "/virtiofs.sock", vsock = bundle_ + "/vsock.sock";
    unlink(fs_sock.c_str());
    unlink(vsock.c_str());
    auto fsd = spawn({c_.virtiofsd, "--socket-path=" + fs_sock, "-o", "source=" + bundle_, "-o", "cache=none",
                      "-o", "sandbox=chroot"}, bundle_ + "/virtiofsd.log");
    if (!fsd) return fsd.error();
    virtiofsd_ = *fsd;
    record(bundle_, virtiofsd_);
    if (!wait_for_socket(fs_sock, 5000)) return make_error("virtiofsd did not create %s (see virtiofsd.log)", fs_sock.c_str());
    auto vmm = spawn({c_.vmm, "--kernel", c_.kernel, "--initrd", c_.initramfs, "--vcpus", std::to_string(c_.vcpus),
                      "--mem", std::to_string(c_.memory_mib), "--vsock", "3," + vsock, "--fs", "husk," + fs_sock,
                      "--cmdline", "console=ttyS0 reboot=k panic=-1 no_timer_check 8250.nr_uarts=1 quiet"},
                     bundle_ + "/vmm.log");
    if (!vmm) return vmm.error();
    vmm_ = *vmm;
    record(bundle_, vmm_);
    if (!wait_for_socket(vsock, 5000)) return make_error("husk-vmm did not create %s (see vmm.log)", vsock.c_str());
    auto ch = agent_client::connect("hvsock:" + vsock + ":1024", std::chrono::milliseconds(c_.agent_timeout_ms));
    if (!ch) return make_error("sandbox %s: %s (see %s/vmm.log)", id_.c_str(), ch.error().message.c_str(), bundle_.c_str());
    channel_ = *ch;
    return {};
  }
  std::shared_ptr<grpc::Channel> channel() const override { return channel_; }
  agent::v1::Rootfs rootfs() const override {
    agent::v1::Rootfs r;
    r.set_virtiofs_tag("husk");
    r.set_subpath("rootfs");
    return r;
  }
  void stop() override {
    channel_.reset();
    terminate(vmm_);
    terminate(virtiofsd_);
    vmm_ = virtiofsd_ = -1;
    unlink((bundle_ + "/husk-pids").c_str());
  }

 private:
  Config c_;
  std::string bundle_, id_;
  pid_t virtiofsd_ = -1, vmm_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
};

class HostSandbox : public Sandbox {
 public:
  HostSandbox(Config c, std::string bundle, std::string id) : c_(std::move(c)), bundle_(std::move(bundle)), id_(std::move(id)) {}
  ~HostSandbox() override { stop(); }

  Status start() override {
    std::string sock = bundle_ + "/agent.sock";
    auto pid = spawn({c_.agent, "--listen", "unix:" + sock, "--state-dir", bundle_ + "/agent-state", "--cgroup-parent",
                      "/husk-shim", "--ignore-missing-controllers", "--log-level", c_.log_level}, bundle_ + "/agent.log");
    if (!pid) return pid.error();
    agent_ = *pid;
    record(bundle_, agent_);
    if (!wait_for_socket(sock, c_.agent_timeout_ms)) return make_error("husk-agent did not listen on %s (see agent.log)", sock.c_str());
    auto ch = agent_client::connect("unix:" + sock, std::chrono::milliseconds(c_.agent_timeout_ms));
    if (!ch) return ch.error();
    channel_ = *ch;
    return {};
  }
  std::shared_ptr<grpc::Channel> channel() const override { return channel_; }
  agent::v1::Rootfs rootfs() const override {
    agent::v1::Rootfs r;
    r.set_path(bundle_ + "/rootfs");
    return r;
  }
  void stop() override {
    channel_.reset();
    terminate(agent_);  // SIGTERM: the agent removes its containers first
    agent_ = -1;
    unlink((bundle_ + "/husk-pids").c_str());
  }

 private:
  Config c_;
  std::string bundle_, id_;
  pid_t agent_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace

void Sandbox::kill_recorded(const std::string& bundle) {
  std::ifstream f(bundle + "/husk-pids");
  pid_t pid;
  while (f >> pid)
    if (pid > 1) kill(pid, SIGKILL);
  unlink((bundle + "/husk-pids").c_str());
}

std::unique_ptr<Sandbox> make_sandbox(const Config& c, const std::string& bundle, const std::string& id) {
  if (c.mode == "host") return std::make_unique<HostSandbox>(c, bundle, id);
  return std::make_unique<VmSandbox>(c, bundle, id);
}

}  // namespace husk::shim
