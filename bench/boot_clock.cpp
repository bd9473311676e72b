// husk-bench-clock: runs a VMM command and times it from the outside, the same way for every
// VMM: from just before exec to a marker line on its output, and to its exit. Also reports the
// child's peak RSS. Sets HUSK_EXEC_T0_NS so husk-vmm's own figures use the same origin.
//
// usage: husk-bench-clock [--marker TEXT] [--log FILE] [--timeout SEC] [--stop-at-marker] -- CMD [ARGS...]
//   --stop-at-marker: SIGTERM the command once the marker came (a guest that never exits)
// prints: rc=N marker_us=N exit_us=N maxrss_kib=N   (marker_us=-1 when the marker never came)
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

int main(int argc, char** argv) {
  std::string marker = "HUSK_GUEST_READY", log_path;
  int timeout_s = 300;
  bool stop_at_marker = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") { ++i; break; }
    if (a == "--stop-at-marker") { stop_at_marker = true; continue; }
    if (i + 1 >= argc) { std::fprintf(stderr, "husk-bench-clock: %s needs a value\n", a.c_str()); return 2; }
    if (a == "--marker") marker = argv[++i];
    else if (a == "--log") log_path = argv[++i];
    else if (a == "--timeout") timeout_s = std::atoi(argv[++i]);
    else { std::fprintf(stderr, "husk-bench-clock: unknown option %s\n", a.c_str()); return 2; }
  }
  if (i >= argc) { std::fprintf(stderr, "usage: husk-bench-clock [--marker T] [--log F] [--timeout S] -- CMD...\n"); return 2; }
  FILE* log = log_path.empty() ? nullptr : std::fopen(log_path.c_str(), "w");

  int pipefd[2];
  if (pipe(pipefd) != 0) return 2;
  uint64_t t0 = now_ns();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    int devnull = open("/dev/null", 0);
    if (devnull >= 0) dup2(devnull, 0);
    setenv("HUSK_EXEC_T0_NS", std::to_string(t0).c_str(), 1);
    execvp(argv[i], argv + i);
    _exit(127);
  }
  close(pipefd[1]);
  alarm(static_cast<unsigned>(timeout_s));
  signal(SIGALRM, [](int) {});
  int64_t marker_us = -1;
  std::string window;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) { kill(pid, SIGKILL); break; }
      break;
    }
    uint64_t t = now_ns();
    if (log) std::fwrite(buf, 1, static_cast<size_t>(n), log);
    if (marker_us < 0) {
      window.append(buf, static_cast<size_t>(n));
      if (window.find(marker) != std::string::npos) {
        marker_us = static_cast<int64_t>((t - t0) / 1000);
        if (stop_at_marker) kill(pid, SIGTERM);
      } else if (window.size() > marker.size()) window.erase(0, window.size() - marker.size());
    }
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  uint64_t exit_us = (now_ns() - t0) / 1000;
  if (log) std::fclose(log);
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::printf("rc=%d marker_us=%lld exit_us=%llu maxrss_kib=%ld\n", rc, static_cast<long long>(marker_us),
              static_cast<unsigned long long>(exit_us), ru.ru_maxrss);
  return 0;
}
