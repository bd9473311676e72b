#include "jailer/jail.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/mounts.h"
#include "common/unique_fd.h"

namespace husk::jailer {
namespace {

// The child cannot return an Error across exec: it writes the message to this pipe and exits;
// the parent reads it (EOF means exec succeeded: the pipe is close-on-exec).
[[noreturn]] void child_fail(int err_fd, const std::string& what) {
  std::string msg = what + ": " + strerror(errno);
  (void)!::write(err_fd, msg.data(), msg.size());
  ::_exit(127);
}

bool safe_path(const std::string& p) {
  return !p.empty() && p[0] == '/' && p.find("/../") == std::string::npos && p.find("/./") == std::string::npos &&
         !p.ends_with("/..") && !p.ends_with("/.");
}

void mkdirs(const std::string& path) {  // parents of `path` (inside the jail's fresh tmpfs)
  for (size_t i = 1; (i = path.find('/', i)) != std::string::npos; ++i) ::mkdir(path.substr(0, i).c_str(), 0755);
}

// Closes every descriptor >= `from` except those in `keep`.
void close_from(unsigned from, std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  unsigned next = from;
  for (int k : keep) {
    if (k < 0 || static_cast<unsigned>(k) < next) continue;
    if (static_cast<unsigned>(k) > next) ::syscall(SYS_close_range, next, static_cast<unsigned>(k) - 1, 0);
    next = static_cast<unsigned>(k) + 1;
  }
  ::syscall(SYS_close_range, next, ~0U, 0);
}

// Everything between fork and exec, in the child (pid 1 of the new pid namespace).
[[noreturn]] void child(const Spec& s, int exec_fd, int err_fd, int alive_fd) {
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);

  // Nothing we mount goes back to the host; with no root of our own (virtiofsd), the host's
  // mounts still come in (container roots attached to the share later).
  if (::mount(nullptr, "/", nullptr, MS_REC | (s.root.empty() ? MS_SLAVE : MS_PRIVATE), nullptr) != 0)
    child_fail(err_fd, "making / private");
  if (!s.root.empty()) {
    const std::string& r = s.root;
    if (::mount("tmpfs", r.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64") != 0)
      child_fail(err_fd, "tmpfs on " + r);
    for (const auto& dev : s.devices) {
      struct stat st;
      if (::stat(dev.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) child_fail(err_fd, "device " + dev);
      std::string target = r + dev;
      mkdirs(target);
      if (::mknod(target.c_str(), S_IFCHR | 0600, st.st_rdev) != 0) child_fail(err_fd, "mknod " + target);
      if (s.uid && ::chown(target.c_str(), *s.uid, *s.gid) != 0) child_fail(err_fd, "chown " + target);
    }
    for (const auto& b : s.binds) {
      std::string target = r + b.target;
      mkdirs(target);
      UniqueFd f(::open(target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0444));
      if (!f) child_fail(err_fd, "creating " + target);
      if (::mount(b.source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
        child_fail(err_fd, "binding " + b.source);
      if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
        child_fail(err_fd, "read-only " + target);
    }
    // The helper can write nothing in its root (its sockets and files come as descriptors).
    if (::mount(nullptr, r.c_str(), nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, nullptr) != 0)
      child_fail(err_fd, "read-only " + r);
    // pivot_root(".", "."): the old root ends up stacked under the new one and is detached
    // at once, with no directory for it in the jail.
    if (::chdir(r.c_str()) != 0) child_fail(err_fd, "chdir " + r);
    if (::syscall(SYS_pivot_root, ".", ".") == 0) {
      if (::umount2(".", MNT_DETACH) != 0) child_fail(err_fd, "detaching the old root");
    } else if (errno == EINVAL && root_is_initramfs()) {
      // The initramfs cannot be pivoted away from (the test host boots from one): move the
      // jail over / and chroot, as runc --no-pivot does. The old root stays beneath, out of
      // reach of a process without capabilities or descriptors into it.
      if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) child_fail(err_fd, "moving the jail over /");
      if (::chroot(".") != 0) child_fail(err_fd, "chroot");
    } else {
      child_fail(err_fd, "pivot_root");
    }
    if (::chdir("/") != 0) child_fail(err_fd, "chdir /");
  }
  (void)::sethostname("husk", 4);

  const std::pair<int, uint64_t> limits[] = {{RLIMIT_NOFILE, s.limits.nofile},
                                             {RLIMIT_FSIZE, s.limits.fsize},
                                             {RLIMIT_NPROC, s.limits.nproc},
                                             {RLIMIT_CORE, s.limits.core}};
  for (auto [res, v] : limits) {
    rlimit rl{v, v};
    if (::setrlimit(res, &rl) != 0) child_fail(err_fd, "setrlimit");
  }
  close_from(3 + s.keep_fds, {exec_fd, err_fd, alive_fd});

  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(err_fd, "no_new_privs");
  if (s.uid) {
    // Bounding set first (needs CAP_SETPCAP, which setresuid is about to take away).
    for (int cap = 0; ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap)
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) child_fail(err_fd, "dropping bounding capabilities");
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) child_fail(err_fd, "clearing ambient capabilities");
    if (::setgroups(0, nullptr) != 0) child_fail(err_fd, "setgroups");
    if (::setresgid(*s.gid, *s.gid, *s.gid) != 0) child_fail(err_fd, "setresgid");
    if (::setresuid(*s.uid, *s.uid, *s.uid) != 0) child_fail(err_fd, "setresuid");
    // setresuid cleared permitted and effective; inheritable survives it: clear all three.
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capset, &hdr, data) != 0) child_fail(err_fd, "clearing capabilities");
  }
  // Dies with the jailer. Set after setresuid, which clears it; then make sure the jailer did
  // not die before it was set.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) child_fail(err_fd, "PR_SET_PDEATHSIG");
  pollfd p{alive_fd, POLLIN, 0};
  if (::poll(&p, 1, 0) != 0) ::_exit(127);

  std::vector<char*> argv, envp;
  for (const auto& a : s.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : s.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::syscall(SYS_execveat, exec_fd, "", argv.data(), envp.data(), AT_EMPTY_PATH);
  child_fail(err_fd, "exec " + s.exec);
}

}  // namespace

Status check(const Spec& s) {
  if (s.exec.empty() || s.exec[0] != '/') return make_error(ErrorCode::kInvalidArgument, "the helper must be an absolute path");
  if (s.argv.empty()) return make_error(ErrorCode::kInvalidArgument, "the helper needs an argv[0]");
  if (s.uid.has_value() != s.gid.has_value()) return make_error(ErrorCode::kInvalidArgument, "--uid and --gid go together");
  if (s.uid && (*s.uid == 0 || *s.gid == 0)) return make_error(ErrorCode::kInvalidArgument, "the jail uid/gid must not be 0");
  if (!s.root.empty() && !safe_path(s.root)) return make_error(ErrorCode::kInvalidArgument, "--root must be an absolute path without . or ..");
  if (s.root.empty() && (!s.binds.empty() || !s.devices.empty()))
    return make_error(ErrorCode::kInvalidArgument, "--bind and --dev need --root");
  for (const auto& b : s.binds)
    if (!safe_path(b.target) || b.target == "/" || !safe_path(b.source))
      return make_error(ErrorCode::kInvalidArgument, "--bind %s:%s: both must be absolute paths without . or ..",
                        b.source.c_str(), b.target.c_str());
  for (const auto& d : s.devices)
    if (d != "/dev/kvm" && d != "/dev/net/tun" && d != "/dev/urandom")
      return make_error(ErrorCode::kInvalidArgument, "--dev %s: only /dev/kvm, /dev/net/tun and /dev/urandom", d.c_str());
  for (const auto& e : s.env)
    if (e.find('=') == std::string::npos) return make_error(ErrorCode::kInvalidArgument, "--env %s: NAME=VALUE", e.c_str());
  if (s.limits.nofile < 3 + s.keep_fds + 16) return make_error(ErrorCode::kInvalidArgument, "nofile is too small for the descriptors handed over");
  return {};
}

Result<int> run(const Spec& s) {
  HUSK_TRY(check(s));
  UniqueFd exec_fd(::open(s.exec.c_str(), O_PATH | O_CLOEXEC));
  if (!exec_fd) return make_error(ErrorCode::kNotFound, "%s: %s", s.exec.c_str(), strerror(errno));
  for (unsigned i = 0; i < s.keep_fds; ++i)
    if (::fcntl(3 + static_cast<int>(i), F_GETFD) < 0)
      return make_error(ErrorCode::kInvalidArgument, "descriptor %u was to be handed over but is not open", 3 + i);
  UniqueFd netns;
  if (!s.netns.empty() && s.netns != "host") {
    netns.reset(::open(s.netns.c_str(), O_RDONLY | O_CLOEXEC));
    if (!netns) return make_error(ErrorCode::kNotFound, "network namespace %s: %s", s.netns.c_str(), strerror(errno));
  }
  if (!s.cgroup.empty()) {
    // The jailer joins first, so the helper is born in the cgroup and accounted from its start.
    UniqueFd procs(::open((s.cgroup + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    std::string pid = std::to_string(::getpid());
    if (!procs || ::write(procs.get(), pid.data(), pid.size()) < 0)
      return make_error(ErrorCode::kFailedPrecondition, "joining cgroup %s: %s", s.cgroup.c_str(), strerror(errno));
  }
  int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
  if (s.new_pid) flags |= CLONE_NEWPID;
  if (s.netns.empty()) flags |= CLONE_NEWNET;
  if (::unshare(flags) != 0) return make_error(ErrorCode::kFailedPrecondition, "unshare: %s", strerror(errno));
  if (netns && ::setns(netns.get(), CLONE_NEWNET) != 0)
    return make_error(ErrorCode::kFailedPrecondition, "entering network namespace %s: %s", s.netns.c_str(), strerror(errno));
  netns.reset();

  int err_pipe[2], alive_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0 || ::pipe2(alive_pipe, O_CLOEXEC) != 0)
    return make_error("pipe: %s", strerror(errno));
  UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]), alive_r(alive_pipe[0]), alive_w(alive_pipe[1]);

  sigset_t relay;
  sigemptyset(&relay);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&relay, sig);
  ::sigprocmask(SIG_BLOCK, &relay, nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return make_error("fork: %s", strerror(errno));
  if (pid == 0) child(s, exec_fd.get(), err_w.get(), alive_r.get());

  // The helper holds what was handed over; the jailer keeps nothing of it.
  if (s.keep_fds) ::syscall(SYS_close_range, 3u, 2u + s.keep_fds, 0);
  err_w.reset();
  alive_r.reset();
  exec_fd.reset();
  char msg[512];
  ssize_t n = ::read(err_r.get(), msg, sizeof msg - 1);
  if (n > 0) {
    ::waitpid(pid, nullptr, 0);
    return make_error(ErrorCode::kFailedPrecondition, "jailing %s: %.*s", s.exec.c_str(), static_cast<int>(n), msg);
  }

  int status = 0;
  for (;;) {
    siginfo_t si;
    if (::sigwaitinfo(&relay, &si) < 0) continue;
    if (si.si_signo != SIGCHLD) {
      ::kill(pid, si.si_signo);
      continue;
    }
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  int sig = WTERMSIG(status);
  if (sig == SIGSYS)
    std::fprintf(stderr, "husk-jailer: %s was killed by SIGSYS: it made a system call outside its seccomp allowlist "
                 "(the kernel log's audit line, type=1326, names the call)\n", s.exec.c_str());
  else
    std::fprintf(stderr, "husk-jailer: %s was killed by signal %d (%s)\n", s.exec.c_str(), sig, strsignal(sig));
  std::fflush(stderr);
  // End the same way, so whoever waits for the jailer sees the helper's fate. No core file.
  rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  ::sigprocmask(SIG_UNBLOCK, &one, nullptr);
  ::raise(sig);
  return 128 + sig;
}

}  // namespace husk::jailer
