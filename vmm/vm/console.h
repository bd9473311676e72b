// The guest console's host side: output to stdout/a file/nowhere with a panic watcher, and
// host stdin (raw mode when it is a terminal) fed to the UART through the event loop.
#pragma once

#include <termios.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "vmm/devices/serial.h"
#include "vmm/vm/config.h"
#include "vmm/vm/stop.h"

namespace husk {

// Scans console output line by line: the kernel's panic banner stops the VM; the guest's
// ready line (HUSK_GUEST_READY from a test init, HUSK_AGENT_READY from husk-agent) runs
// `on_ready`, the boot timer for guests without /dev/mem (ours: DEVMEM is off).
class PanicWatcher {
 public:
  explicit PanicWatcher(StopState& stop, std::function<void()> on_ready = {})
      : stop_(stop), on_ready_(std::move(on_ready)) {}
  void feed(uint8_t byte);

 private:
  StopState& stop_;
  std::function<void()> on_ready_;
  std::string line_;
};

// Guest console output. To a file it is bounded: once the file reaches `limit` bytes, its
// older half is dropped (the newest output, where a failure's reason is, stays), so a guest
// printing without end cannot fill the host's disk or tmpfs.
class ConsoleOutput {
 public:
  static Result<std::shared_ptr<ConsoleOutput>> open(const VmConfig& cfg, StopState& stop,
                                                    std::function<void()> on_ready = {});
  ConsoleOutput(UniqueFd owned, int fd, StopState& stop, uint64_t limit = 0, std::function<void()> on_ready = {})
      : owned_(std::move(owned)), fd_(fd), limit_(limit && limit < 4096 ? 4096 : limit),
        watcher_(stop, std::move(on_ready)) {}
  // Called with the UART's lock held: one writer at a time.
  void put(uint8_t byte);

 private:
  void drop_older_half();
  UniqueFd owned_;
  int fd_;  // -1: discard
  uint64_t limit_;  // 0: unbounded (stdout)
  uint64_t offset_ = 0;
  PanicWatcher watcher_;
};

// Puts a terminal in raw mode for the guest and restores it on destruction.
class RawTerminal {
 public:
  explicit RawTerminal(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  std::optional<termios> saved_;
};

// Reads host stdin and queues it to the UART, pausing while the guest's queue is full.
class ConsoleInput : public std::enable_shared_from_this<ConsoleInput> {
 public:
  ConsoleInput(boost::asio::io_context& io, std::shared_ptr<Serial> serial);
  void start();

 private:
  void read_more();
  void push();  // hands pending bytes to the UART; reads more once all are taken
  boost::asio::io_context& io_;
  std::shared_ptr<Serial> serial_;
  std::optional<boost::asio::posix::stream_descriptor> in_;
  std::optional<RawTerminal> raw_;
  std::array<uint8_t, 4096> buf_{};
  size_t pending_off_ = 0, pending_len_ = 0;
};

}  // namespace husk
