#include "guest-agent/runtime/reaper.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>

namespace husk::agent {

void Reaper::block_sigchld() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

Reaper::Reaper(OnExit on_exit) : on_exit_(std::move(on_exit)) {
  thread_ = std::thread([this] { run(); });
}

Reaper::~Reaper() {
  stop_ = true;
  pthread_kill(thread_.native_handle(), SIGCHLD);
  thread_.join();
}

void Reaper::run() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGCHLD);
  for (;;) {
    // Reap before waiting too: children may have exited before this thread started.
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      on_exit_(pid, status);
    }
    if (stop_) return;
    int sig;
    sigwait(&s, &sig);
  }
}

}  // namespace husk::agent
