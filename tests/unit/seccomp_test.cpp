// Seccomp profiles compiled through libseccomp must do in a real process what they say: a
// child installs the program and reports what its system calls returned.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <seccomp.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>

#include "guest-agent/oci/seccomp.h"

namespace husk::agent::oci {
namespace {

// Runs `probe` in a child after installing `profile`; returns the child's exit code.
int run_filtered(const Seccomp& profile, const std::function<int()>& probe) {
  auto prog = compile_seccomp(profile);
  EXPECT_TRUE(prog) << (prog ? "" : prog.error().message);
  if (!prog) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (install_seccomp(*prog) != 0) _exit(250);
    // exit_group directly: a sanitizer's _exit hook would run leak checks the filter forbids.
    syscall(SYS_exit_group, probe());
  }
  int st;
  waitpid(pid, &st, 0);
  if (WIFSIGNALED(st)) return 1000 + WTERMSIG(st);
  return WEXITSTATUS(st);
}

SeccompRule rule(std::vector<std::string> names, uint32_t action, std::vector<SeccompArg> args = {}) {
  return SeccompRule{std::move(names), action, std::move(args)};
}

TEST(Seccomp, ErrnoRuleReturnsTheGivenErrno) {
  Seccomp s;
  s.default_action = SCMP_ACT_ALLOW;
  s.syscalls.push_back(rule({"mkdir", "mkdirat"}, SCMP_ACT_ERRNO(EACCES)));
  int rc = run_filtered(s, [] {
    if (mkdir("/tmp/husk-seccomp-probe-never-made", 0700) == 0) return 0;
    return errno;
  });
  EXPECT_EQ(rc, EACCES);
  // Other calls still work.
  EXPECT_EQ(run_filtered(s, [] { return getpid() > 0 ? 7 : 0; }), 7);
}

TEST(Seccomp, DefaultDenyWithAllowList) {
  Seccomp s;
  s.default_action = SCMP_ACT_ERRNO(ENOSYS);
  s.syscalls.push_back(rule({"exit_group", "exit", "getppid", "brk", "mmap", "munmap"}, SCMP_ACT_ALLOW));
  EXPECT_EQ(run_filtered(s, [] { return syscall(SYS_getuid) == -1 && errno == ENOSYS ? 3 : 4; }), 3);
  EXPECT_EQ(run_filtered(s, [] { return syscall(SYS_getppid) > 0 ? 5 : 6; }), 5);
}

TEST(Seccomp, ArgumentComparisons) {
  Seccomp s;
  s.default_action = SCMP_ACT_ALLOW;
  // personality(PER_LINUX32) refused; personality(0xffffffff) (a query) allowed.
  s.syscalls.push_back(rule({"personality"}, SCMP_ACT_ERRNO(EPERM), {SeccompArg{0, PER_LINUX32, 0, SCMP_CMP_EQ}}));
  EXPECT_EQ(run_filtered(s, [] { return syscall(SYS_personality, PER_LINUX32) == -1 && errno == EPERM ? 1 : 2; }), 1);
  EXPECT_EQ(run_filtered(s, [] { return syscall(SYS_personality, 0xffffffffUL) >= 0 ? 1 : 2; }), 1);
}

TEST(Seccomp, KillActionKillsTheProcess) {
  Seccomp s;
  s.default_action = SCMP_ACT_ALLOW;
  s.syscalls.push_back(rule({"getppid"}, SCMP_ACT_KILL_PROCESS));
  EXPECT_EQ(run_filtered(s, [] { return static_cast<int>(syscall(SYS_getppid)); }), 1000 + SIGSYS);
}

TEST(Seccomp, UnknownSyscallNamesAreSkipped) {
  Seccomp s;
  s.default_action = SCMP_ACT_ALLOW;
  s.syscalls.push_back(rule({"no_such_syscall_anywhere", "getppid"}, SCMP_ACT_ERRNO(EPERM)));
  EXPECT_EQ(run_filtered(s, [] { return syscall(SYS_getppid) == -1 && errno == EPERM ? 9 : 8; }), 9);
}

}  // namespace
}  // namespace husk::agent::oci
