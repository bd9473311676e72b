#include "guest-agent/runtime/launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "common/log.h"
#include "guest-agent/oci/capabilities.h"
#include "guest-agent/runtime/cgroup.h"
#include "guest-agent/runtime/child.h"

namespace husk::agent {
namespace child {
namespace {
int g_sync = -1;
int g_root_fd = -1;  // exec: the container's root, opened before joining its mount namespace
}

void set_sync(int fd) { g_sync = fd; }

bool send_msg(int fd, uint32_t type, int32_t value, const char* text) {
  Msg m;
  m.type = type;
  m.value = value;
  std::snprintf(m.text, sizeof m.text, "%s", text);
  size_t len = offsetof(Msg, text) + std::strlen(m.text) + 1;
  return ::send(fd, &m, len, MSG_NOSIGNAL) == static_cast<ssize_t>(len);
}

void die(const char* fmt, ...) {
  char buf[sizeof(Msg::text)];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  send_msg(g_sync, kError, 0, buf);
  _exit(127);
}

namespace {

Msg recv_msg(int fd) {
  Msg m;
  ssize_t n = ::recv(fd, &m, sizeof m, 0);
  if (n <= 0) _exit(127);  // the agent gave up on us
  m.text[sizeof m.text - 1] = 0;
  return m;
}

void write_file(const char* path, const char* value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open %s: %s", path, strerror(errno));
  if (::write(fd, value, strlen(value)) < 0) die("write %s to %s: %s", value, path, strerror(errno));
  close(fd);
}

const char* rlimit_name(int r) {
  switch (r) {
    case RLIMIT_NOFILE: return "RLIMIT_NOFILE";
    case RLIMIT_NPROC: return "RLIMIT_NPROC";
    case RLIMIT_CORE: return "RLIMIT_CORE";
    case RLIMIT_STACK: return "RLIMIT_STACK";
    case RLIMIT_MEMLOCK: return "RLIMIT_MEMLOCK";
    default: return "rlimit";
  }
}

// The account of `uid` in the container's /etc/passwd: its home directory, "/" when absent.
std::string home_of(uint32_t uid) {
  std::ifstream f("/etc/passwd");
  std::string line;
  while (std::getline(f, line)) {
    // name:password:uid:gid:gecos:home:shell
    size_t pos = 0;
    std::string fields[7];
    for (int i = 0; i < 7; i++) {
      size_t c = line.find(':', pos);
      fields[i] = line.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
      if (c == std::string::npos) break;
      pos = c + 1;
    }
    char* end = nullptr;
    unsigned long u = std::strtoul(fields[2].c_str(), &end, 10);
    if (!fields[2].empty() && *end == 0 && u == uid && !fields[5].empty()) return fields[5];
  }
  return "/";
}

bool has_env(const std::vector<std::string>& env, const char* name) {
  size_t n = strlen(name);
  for (const auto& e : env)
    if (e.size() > n && e.compare(0, n, name) == 0 && e[n] == '=') return true;
  return false;
}

std::string find_program(const std::string& arg0, const std::vector<std::string>& env) {
  if (arg0.find('/') != std::string::npos) return arg0;
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : env)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find(':', i);
    if (j == std::string::npos) j = path.size();
    std::string dir = j > i ? path.substr(i, j - i) : ".";
    std::string cand = dir + "/" + arg0;
    struct stat st;
    if (stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(cand.c_str(), X_OK) == 0) return cand;
    i = j + 1;
  }
  die("exec: \"%s\": executable file not found in $PATH", arg0.c_str());
}

void apply_identity(const oci::Process& p) {
  uint64_t bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
  if (p.capabilities) {
    bounding = p.capabilities->bounding;
    effective = p.capabilities->effective;
    inheritable = p.capabilities->inheritable;
    permitted = p.capabilities->permitted;
    ambient = p.capabilities->ambient;
  }
  int last = oci::last_capability();
  for (int c = 0; c <= last; c++) {
    if (bounding & (1ULL << c)) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) die("dropping capability %d from the bounding set: %s", c, strerror(errno));
  }
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) die("PR_SET_KEEPCAPS: %s", strerror(errno));
  std::vector<gid_t> groups(p.user.additional_gids.begin(), p.user.additional_gids.end());
  if (setgroups(groups.size(), groups.data()) != 0 && !(errno == EPERM && groups.empty()))
    die("setgroups: %s", strerror(errno));
  if (setresgid(p.user.gid, p.user.gid, p.user.gid) != 0) die("setresgid %u: %s", p.user.gid, strerror(errno));
  if (setresuid(p.user.uid, p.user.uid, p.user.uid) != 0) die("setresuid %u: %s", p.user.uid, strerror(errno));
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) die("PR_SET_KEEPCAPS: %s", strerror(errno));
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = static_cast<uint32_t>(effective);
  data[1].effective = static_cast<uint32_t>(effective >> 32);
  data[0].permitted = static_cast<uint32_t>(permitted);
  data[1].permitted = static_cast<uint32_t>(permitted >> 32);
  data[0].inheritable = static_cast<uint32_t>(inheritable);
  data[1].inheritable = static_cast<uint32_t>(inheritable >> 32);
  if (syscall(SYS_capset, &hdr, data) != 0) die("capset: %s", strerror(errno));
  for (int c = 0; c <= last; c++) {
    if (!(ambient & (1ULL << c))) continue;
    // Like runc, an ambient capability that is not also permitted and inheritable is left out
    // (the kernel refuses it) rather than failing the container.
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
  }
}

// The container's process, from fork to execve.
[[noreturn]] void process_main(const LaunchPlan& plan, int sync) {
  const oci::Process& p = *plan.process;
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);

  if (plan.new_namespaces & CLONE_NEWUSER) {
    // Become root of the new user namespace (mapped by the agent) before touching mounts.
    (void)setresgid(0, 0, 0);
    (void)setresuid(0, 0, 0);
  }
  if (setsid() < 0) die("setsid: %s", strerror(errno));
  if (plan.pty_slave >= 0) {
    if (ioctl(plan.pty_slave, TIOCSCTTY, 0) != 0) die("TIOCSCTTY: %s", strerror(errno));
    for (int fd = 0; fd < 3; fd++)
      if (dup2(plan.pty_slave, fd) < 0) die("dup2: %s", strerror(errno));
  } else {
    // dup2 clears close-on-exec on 0-2 only.
    if (dup2(plan.stdin_fd, 0) < 0 || dup2(plan.stdout_fd, 1) < 0 || dup2(plan.stderr_fd, 2) < 0)
      die("dup2: %s", strerror(errno));
  }

  if (g_root_fd >= 0 && (fchdir(g_root_fd) != 0 || chroot(".") != 0))
    die("entering the container's root: %s", strerror(errno));
  if (plan.setup_rootfs) prepare_rootfs(plan);
  if (plan.setup_rootfs) {
    const oci::Spec& s = *plan.spec;
    if (!s.hostname.empty() && sethostname(s.hostname.data(), s.hostname.size()) != 0)
      die("sethostname: %s", strerror(errno));
    if (!s.domainname.empty() && setdomainname(s.domainname.data(), s.domainname.size()) != 0)
      die("setdomainname: %s", strerror(errno));
    for (const auto& [key, value] : s.sysctl) {
      std::string path = "/proc/sys/" + key;
      for (size_t i = 10; i < path.size(); i++)
        if (path[i] == '.') path[i] = '/';
      write_file(path.c_str(), value.c_str());
    }
  }
  if (p.oom_score_adj) write_file("/proc/self/oom_score_adj", std::to_string(*p.oom_score_adj).c_str());
  for (const auto& r : p.rlimits) {
    struct rlimit rl{r.soft, r.hard};
    if (setrlimit(r.resource, &rl) != 0) die("setrlimit %s soft %llu hard %llu: %s", rlimit_name(r.resource),
                                             static_cast<unsigned long long>(r.soft),
                                             static_cast<unsigned long long>(r.hard), strerror(errno));
  }
  std::vector<std::string> env = p.env;
  if (!has_env(env, "HOME")) env.push_back("HOME=" + home_of(p.user.uid));
  std::string program = find_program(p.args[0], env);
  if (chdir(p.cwd.c_str()) != 0) die("chdir to cwd \"%s\": %s", p.cwd.c_str(), strerror(errno));
  if (plan.setup_rootfs) finish_rootfs(plan);

  // Without no_new_privs the filter must go in while we still hold CAP_SYS_ADMIN.
  if (plan.seccomp && !p.no_new_privileges) {
    if (int rc = oci::install_seccomp(*plan.seccomp); rc != 0) die("loading the seccomp filter: %s", strerror(-rc));
  }
  apply_identity(p);
  if (p.user.umask) umask(*p.user.umask);
  else umask(022);
  if (p.no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));

  std::vector<char*> argv, envp;
  for (const auto& a : p.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  // Nothing of the agent's but 0-2 may reach the container.
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  fcntl(sync, F_SETFD, FD_CLOEXEC);

  if (!send_msg(sync, kReady, 0)) _exit(127);
  if (plan.wait_for_start) {
    Msg m = recv_msg(sync);
    if (m.type != kStart) _exit(127);
  }
  if (plan.seccomp && p.no_new_privileges) {
    if (int rc = oci::install_seccomp(*plan.seccomp); rc != 0) die("loading the seccomp filter: %s", strerror(-rc));
  }
  execve(program.c_str(), argv.data(), envp.data());
  die("exec %s: %s", program.c_str(), strerror(errno));
}

}  // namespace

void intermediate(const LaunchPlan& plan, int sync) {
  set_sync(sync);
  Msg go = recv_msg(sync);
  if (go.type != kGo) _exit(127);
  if (!plan.enter_root.empty()) {
    g_root_fd = open(plan.enter_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (g_root_fd < 0) die("open %s: %s", plan.enter_root.c_str(), strerror(errno));
  }
  // Open every namespace first: once in the container's mount namespace, /proc is its own.
  int fds[8];
  size_t n = std::min<size_t>(plan.join.size(), 8);
  for (size_t i = 0; i < n; i++) {
    fds[i] = open(plan.join[i].second.c_str(), O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) die("open namespace %s: %s", plan.join[i].second.c_str(), strerror(errno));
  }
  // Join the user namespace first: it grants the rights to join the others it owns.
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < n; i++) {
      int type = plan.join[i].first;
      if ((type == CLONE_NEWUSER) != (pass == 0)) continue;
      if (setns(fds[i], type) != 0) die("setns %s: %s", plan.join[i].second.c_str(), strerror(errno));
      close(fds[i]);
    }
  }
  if (plan.new_namespaces & CLONE_NEWUSER) {
    if (unshare(CLONE_NEWUSER) != 0) die("unshare user namespace: %s", strerror(errno));
    if (!send_msg(sync, kUserMap, 0)) _exit(127);
    if (recv_msg(sync).type != kAck) _exit(127);
  }
  int rest = plan.new_namespaces & ~CLONE_NEWUSER;
  if (rest && unshare(rest) != 0) die("unshare namespaces %#x: %s", rest, strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) process_main(plan, sync);
  send_msg(sync, kPid, pid);
  _exit(0);
}

}  // namespace child

namespace {

Status write_map(pid_t pid, const char* file, const std::string& map) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), map.data(), map.size()) != static_cast<ssize_t>(map.size()))
    return make_error("writing %s: %s", path.c_str(), strerror(errno));
  return {};
}

// Waits for one message; 0 type on EOF, -1 on timeout.
int read_msg(int fd, child::Msg* m, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  int rc = poll(&pfd, 1, timeout_ms);
  if (rc == 0) return -1;
  ssize_t n = ::recv(fd, m, sizeof *m, 0);
  if (n <= 0) return 0;
  m->text[sizeof m->text - 1] = 0;
  return static_cast<int>(m->type);
}

constexpr int kSetupTimeoutMs = 60000;

}  // namespace

Result<Launched> launch(const LaunchPlan& plan) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return make_error("socketpair: %s", strerror(errno));
  UniqueFd ours(sv[0]), theirs(sv[1]);
  pid_t mid = fork();
  if (mid < 0) return make_error("fork: %s", strerror(errno));
  if (mid == 0) {
    ours.release();  // closed by exec or exit; no destructor runs in the child
    child::intermediate(plan, theirs.get());
  }
  theirs.reset();
  if (plan.cgroup) {
    if (auto s = plan.cgroup->add_process(mid); !s) {
      kill(mid, SIGKILL);
      return s.error();
    }
  }
  child::send_msg(ours.get(), child::kGo, 0);
  Launched out;
  std::string error;
  bool ready = false;
  for (;;) {
    child::Msg m;
    int t = read_msg(ours.get(), &m, kSetupTimeoutMs);
    if (t == -1) {
      error = "container setup timed out";
      break;
    }
    if (t == 0) {
      if (error.empty()) error = "container setup process exited without a reason";
      break;
    }
    if (t == child::kUserMap) {
      Status s = write_map(mid, "uid_map", plan.uid_map);
      if (s) s = write_map(mid, "gid_map", plan.gid_map);
      if (!s) {
        error = s.error().message;
        break;
      }
      child::send_msg(ours.get(), child::kAck, 0);
    } else if (t == child::kPid) {
      out.pid = m.value;
    } else if (t == child::kReady) {
      ready = true;
    } else if (t == child::kError) {
      error = m.text;
      // The intermediate reports its own failures before it has a pid to send.
      if (out.pid < 0) {
        child::Msg m2;
        if (read_msg(ours.get(), &m2, 1000) == child::kPid) out.pid = m2.value;
      }
      break;
    }
    if (ready && out.pid > 0) break;
  }
  // The intermediate exits on its own; the reaper collects it.
  if (!ready || out.pid <= 0) {
    if (out.pid > 0) kill(out.pid, SIGKILL);
    kill(mid, SIGKILL);
    return Error{error};
  }
  out.sync = std::move(ours);
  if (!plan.wait_for_start) {
    // The process executes right after READY: wait for the socket to close (or an error).
    child::Msg m;
    int t = read_msg(out.sync.get(), &m, kSetupTimeoutMs);
    out.sync.reset();
    if (t == child::kError) return Error{m.text};
    if (t == -1) return make_error("timed out waiting for the process to execute");
  }
  return out;
}

Status start(Launched& l) {
  if (!l.sync) return make_error("process was already started");
  if (!child::send_msg(l.sync.get(), child::kStart, 0))
    return make_error("the container process is gone: %s", strerror(errno));
  child::Msg m;
  int t = read_msg(l.sync.get(), &m, kSetupTimeoutMs);
  l.sync.reset();
  if (t == child::kError) return Error{m.text};
  if (t == -1) return make_error("timed out waiting for the container process to execute");
  return {};  // EOF: execve closed the socket
}

}  // namespace husk::agent
