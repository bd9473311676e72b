#include "vmm/vm/console.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/inherited_fd.h"
#include "common/log.h"

namespace husk {

void PanicWatcher::feed(uint8_t byte) {
  if (byte != '\n') {
    if (line_.size() < 256) line_.push_back(static_cast<char>(byte));
    return;
  }
  // "Kernel panic - not syncing: ..." opens a panic; "---[ end Kernel panic" closes it. With
  // panic=-1 the guest resets right after, but a guest told to hang on panic must not hang us.
  if (on_ready_ && (line_.find("HUSK_GUEST_READY") != std::string::npos ||
                    line_.find("HUSK_AGENT_READY") != std::string::npos)) {
    on_ready_();
    on_ready_ = nullptr;  // the first one counts
  }
  if (line_.find("Kernel panic - not syncing") != std::string::npos) {
    stop_.note_panic();
    if (line_.find("---[ end Kernel panic") != std::string::npos)
      stop_.request(StopReason::kGuestPanic, line_);
  }
  line_.clear();
}

Result<std::shared_ptr<ConsoleOutput>> ConsoleOutput::open(const VmConfig& cfg, StopState& stop,
                                                           std::function<void()> on_ready) {
  UniqueFd owned;
  int fd = -1;
  if (cfg.console == ConsoleMode::kStdio) {
    fd = STDOUT_FILENO;
  } else if (cfg.console == ConsoleMode::kFile) {
    if (cfg.console_fd >= 0) {
      auto inherited = take_inherited_fd(cfg.console_fd);
      if (!inherited) return inherited.error().wrap("console: ");
      owned = std::move(inherited.value());
      // Ours from offset 0: the bounded file rewrites itself with pwrite.
      if (::ftruncate(owned.get(), 0) != 0) return make_error("console fd=%d: %s", cfg.console_fd, strerror(errno));
    } else {
      owned.reset(::open(cfg.console_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    }
    if (!owned)
      return make_error("cannot open console file %s: %s", cfg.console_path.c_str(), strerror(errno));
    fd = owned.get();
    return std::make_shared<ConsoleOutput>(std::move(owned), fd, stop, cfg.console_limit, std::move(on_ready));
  }
  return std::make_shared<ConsoleOutput>(std::move(owned), fd, stop, 0, std::move(on_ready));
}

void ConsoleOutput::drop_older_half() {
  static constexpr char kNote[] = "\n[husk-vmm: older console output dropped]\n";
  uint64_t keep = limit_ / 2;
  std::vector<uint8_t> tail(keep);
  ssize_t got = ::pread(fd_, tail.data(), tail.size(), static_cast<off_t>(offset_ - keep));
  if (got < 0) got = 0;
  offset_ = 0;
  if (::pwrite(fd_, kNote, sizeof kNote - 1, 0) > 0) offset_ = sizeof kNote - 1;
  if (::pwrite(fd_, tail.data(), static_cast<size_t>(got), static_cast<off_t>(offset_)) > 0) offset_ += static_cast<uint64_t>(got);
  (void)::ftruncate(fd_, static_cast<off_t>(offset_));
}

void ConsoleOutput::put(uint8_t byte) {
  watcher_.feed(byte);
  if (fd_ < 0) return;
  ssize_t n;
  if (limit_ == 0) {
    do n = ::write(fd_, &byte, 1);
    while (n < 0 && errno == EINTR);
    return;  // a closed or full stdout must not stop the guest: console output is best effort
  }
  if (offset_ >= limit_) drop_older_half();
  do n = ::pwrite(fd_, &byte, 1, static_cast<off_t>(offset_));
  while (n < 0 && errno == EINTR);
  if (n == 1) ++offset_;
}

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  termios t;
  if (!::isatty(fd) || ::tcgetattr(fd, &t) != 0) return;
  saved_ = t;
  ::cfmakeraw(&t);
  // Keep output post-processing so the host terminal renders the guest's "\n" sanely.
  t.c_oflag |= OPOST;
  ::tcsetattr(fd, TCSANOW, &t);
}

RawTerminal::~RawTerminal() {
  if (saved_) ::tcsetattr(fd_, TCSANOW, &*saved_);
}

ConsoleInput::ConsoleInput(boost::asio::io_context& io, std::shared_ptr<Serial> serial)
    : io_(io), serial_(std::move(serial)) {}

void ConsoleInput::start() {
  int fd = ::dup(STDIN_FILENO);
  if (fd < 0) return;
  boost::system::error_code ec;
  in_.emplace(io_);
  in_->assign(fd, ec);
  if (ec) {
    // Regular files and /dev/null cannot be polled: feed what they hold now (bounded).
    in_.reset();
    UniqueFd owned(fd);
    std::array<uint8_t, 4096> b;
    ssize_t n;
    size_t total = 0;
    while (total < Serial::kRxCapacity && (n = ::read(owned.get(), b.data(), b.size())) > 0) {
      total += serial_->enqueue_input(std::span<const uint8_t>(b.data(), static_cast<size_t>(n)));
    }
    return;
  }
  raw_.emplace(STDIN_FILENO);
  // Weak: the UART holding a strong reference back to us would be a cycle (found by LSan).
  std::weak_ptr<ConsoleInput> weak = shared_from_this();
  serial_->set_on_rx_space([weak, &io = io_] {
    boost::asio::post(io, [weak] {
      if (auto self = weak.lock()) self->push();
    });
  });
  read_more();
}

void ConsoleInput::read_more() {
  auto self = shared_from_this();
  in_->async_read_some(boost::asio::buffer(buf_), [self](boost::system::error_code ec, size_t n) {
    if (ec) return;  // EOF or error: the guest simply gets no more input
    self->pending_off_ = 0;
    self->pending_len_ = n;
    self->push();
  });
}

void ConsoleInput::push() {
  if (pending_len_ == 0) return;
  size_t n = serial_->enqueue_input(std::span<const uint8_t>(buf_.data() + pending_off_, pending_len_));
  pending_off_ += n;
  pending_len_ -= n;
  // Still bytes left: the UART queue is full; on_rx_space resumes us.
  if (pending_len_ == 0) read_more();
}

}  // namespace husk
