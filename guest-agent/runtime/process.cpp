#include "guest-agent/runtime/process.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace husk::agent {

OutputPipe::OutputPipe(Process& owner, UniqueFd fd)
    : owner_(owner), fd_(std::move(fd)), wake_(eventfd(0, EFD_CLOEXEC)) {
  thread_ = std::thread([this] { pump(); });
}

OutputPipe::~OutputPipe() {
  uint64_t one = 1;
  if (wake_) (void)!::write(wake_.get(), &one, sizeof one);
  {
    std::lock_guard lk(owner_.mu_);
    reader_ = false;
    stop_ = true;
  }
  owner_.cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OutputPipe::pump() {
  char chunk[65536];
  for (;;) {
    {
      std::unique_lock lk(owner_.mu_);
      // Backpressure: stop reading until a reader makes room.
      owner_.cv_.wait(lk, [&] { return buf_.size() < kBufferLimit || stop_; });
      if (stop_) break;
    }
    pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) break;
    ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    // EIO: a terminal whose last slave fd closed; for us, the end of the stream.
    if (n <= 0) break;
    std::lock_guard lk(owner_.mu_);
    buf_.append(chunk, static_cast<size_t>(n));
    owner_.cv_.notify_all();
  }
  std::lock_guard lk(owner_.mu_);
  eof_ = true;
  owner_.cv_.notify_all();
}

bool OutputPipe::read(std::string* chunk, const std::function<bool()>& stop) {
  std::unique_lock lk(owner_.mu_);
  reader_ = true;
  for (;;) {
    if (!buf_.empty()) {
      chunk->swap(buf_);
      buf_.clear();
      owner_.cv_.notify_all();
      return true;
    }
    if (eof_) {
      delivered_ = true;
      owner_.cv_.notify_all();
      return false;
    }
    if (stop()) {
      reader_ = false;
      owner_.cv_.notify_all();
      return false;
    }
    owner_.cv_.wait_for(lk, std::chrono::milliseconds(200));
  }
}

bool OutputPipe::finished() const { return eof_ && (!reader_ || delivered_); }

Process::~Process() {
  // Pumps first: they reference this object's mutex.
  out_.reset();
  err_.reset();
}

void Process::attach_stdio(UniqueFd stdin_w, UniqueFd out, UniqueFd err) {
  stdin_ = std::move(stdin_w);
  if (out) out_ = std::make_unique<OutputPipe>(*this, std::move(out));
  if (err) err_ = std::make_unique<OutputPipe>(*this, std::move(err));
}

void Process::attach_pty(UniqueFd master) {
  pty_ = std::move(master);
  stdin_.reset(dup(pty_.get()));
  out_ = std::make_unique<OutputPipe>(*this, UniqueFd(dup(pty_.get())));
}

Status Process::write_stdin(const std::string& data) {
  int fd;
  {
    std::lock_guard lk(mu_);
    fd = stdin_.get();
  }
  if (fd < 0) {
    return make_error(ErrorCode::kFailedPrecondition, "stdin is closed");
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kFailedPrecondition, "writing stdin: %s", strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  return {};
}

void Process::close_stdin() {
  std::lock_guard lk(mu_);
  if (pty_) {
    // A terminal has no separate stdin to close; EOF is the terminal's EOF character.
    const char eot = 4;
    (void)!::write(pty_.get(), &eot, 1);
    return;
  }
  stdin_.reset();
}

Status Process::resize(unsigned rows, unsigned cols) {
  std::lock_guard lk(mu_);
  if (!pty_) {
    return make_error(ErrorCode::kFailedPrecondition, "process has no terminal");
  }
  winsize ws{static_cast<unsigned short>(rows), static_cast<unsigned short>(cols), 0, 0};
  if (ioctl(pty_.get(), TIOCSWINSZ, &ws) != 0) {
    return make_error(ErrorCode::kInternal, "TIOCSWINSZ: %s", strerror(errno));
  }
  return {};
}

void Process::set_exited(int status) {
  std::lock_guard lk(mu_);
  exited_ = true;
  if (WIFEXITED(status)) exit_status_ = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) exit_status_ = 128 + WTERMSIG(status);
  else exit_status_ = 255;
  clock_gettime(CLOCK_REALTIME, &exited_at_);
  // Nobody writes to a dead process's stdin.
  stdin_.reset();
  cv_.notify_all();
}

bool Process::exited() const {
  std::lock_guard lk(mu_);
  return exited_;
}

int Process::exit_status() const {
  std::lock_guard lk(mu_);
  return exit_status_;
}

timespec Process::exited_at() const {
  std::lock_guard lk(mu_);
  return exited_at_;
}

bool Process::wait_exit(const std::function<bool()>& stop) {
  std::unique_lock lk(mu_);
  while (!exited_) {
    if (stop()) return false;
    cv_.wait_for(lk, std::chrono::milliseconds(50));
  }
  return true;
}

bool Process::wait(const std::function<bool()>& stop, int* status, timespec* at) {
  std::unique_lock lk(mu_);
  for (;;) {
    bool done = exited_ && (!out_ || out_->finished()) && (!err_ || err_->finished());
    if (done) {
      *status = exit_status_;
      *at = exited_at_;
      return true;
    }
    if (stop()) return false;
    cv_.wait_for(lk, std::chrono::milliseconds(200));
  }
}

}  // namespace husk::agent
