// A process the agent started (a container's init or an exec) and its standard I/O. Output is
// pumped from the pipe (or terminal) into a bounded buffer by a thread of its own, so a client
// that attaches late still gets every byte, and a process that outruns its reader blocks on
// its pipe instead of growing the agent.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk::agent {

class Process;

class OutputPipe {
 public:
  static constexpr size_t kBufferLimit = 1 << 20;
  OutputPipe(Process& owner, UniqueFd fd);
  ~OutputPipe();
  OutputPipe(const OutputPipe&) = delete;
  OutputPipe& operator=(const OutputPipe&) = delete;

  // Blocks for the next chunk; false once the stream has ended (or `stop` said so).
  bool read(std::string* chunk, const std::function<bool()>& stop);
  // EOF reached and, if a reader attached, everything handed to it.
  bool finished() const;  // owner's mutex held

 private:
  void pump();
  Process& owner_;
  UniqueFd fd_;
  UniqueFd wake_;  // eventfd: tells the pump to give up (process removed while running)
  std::string buf_;
  bool eof_ = false;
  bool reader_ = false;
  bool delivered_ = false;
  bool stop_ = false;  // the process is being removed: drop whatever is left
  std::thread thread_;
};

class Process {
 public:
  Process(std::string exec_id, pid_t pid) : exec_id_(std::move(exec_id)), pid_(pid) {}
  ~Process();

  const std::string& exec_id() const { return exec_id_; }
  pid_t pid() const { return pid_; }

  // stdio wiring, before the process can run
  void attach_stdio(UniqueFd stdin_w, UniqueFd out, UniqueFd err);
  void attach_pty(UniqueFd master);

  OutputPipe* stdout_pipe() { return out_.get(); }
  OutputPipe* stderr_pipe() { return err_.get(); }
  // Fails if stdin is closed or absent.
  Status write_stdin(const std::string& data);
  void close_stdin();
  Status resize(unsigned rows, unsigned cols);

  void set_exited(int wait_status);
  bool exited() const;
  // Blocks until exited (output aside), or `stop` returns true (polled).
  bool wait_exit(const std::function<bool()>& stop);
  // Blocks until exited and output delivered, or `stop` returns true (polled).
  bool wait(const std::function<bool()>& stop, int* exit_status, timespec* exited_at);
  int exit_status() const;
  timespec exited_at() const;

  std::mutex& mu() { return mu_; }
  std::condition_variable& cv() { return cv_; }

 private:
  friend class OutputPipe;
  const std::string exec_id_;
  const pid_t pid_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  UniqueFd stdin_;
  UniqueFd pty_;
  std::unique_ptr<OutputPipe> out_, err_;
  bool exited_ = false;
  int exit_status_ = -1;
  timespec exited_at_{};
};

}  // namespace husk::agent
