#include "vmm/vm/snapshot_load.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include "common/log.h"
#include "common/sockets.h"
#include "vmm/api/server.h"
#include "vmm/vm/microvm.h"

namespace husk {

int run_after_snapshot_load(const VmConfig& cfg) {
  // One listening socket for both phases: a client that connected while the VM was being
  // built is served by the VM's API. The waiting phase serves a duplicate.
  UniqueFd listener;
  if (cfg.api_fd >= 0) {
    listener.reset(::fcntl(cfg.api_fd, F_DUPFD_CLOEXEC, 3));
  } else {
    auto l = listen_unix(cfg.api_path, 4);
    if (!l) {
      LOG_ERROR("--api %s: %s", cfg.api_path.c_str(), l.error().message.c_str());
      return 1;
    }
    listener = std::move(l.value());
  }
  UniqueFd waiting(::fcntl(listener.get(), F_DUPFD_CLOEXEC, 3));
  if (!listener || !waiting) {
    LOG_ERROR("--api: %s", std::strerror(errno));
    return 1;
  }

  boost::asio::io_context io;
  std::unique_ptr<MicroVm> vm;
  bool resume = false;
  api::Handlers h;
  auto none = [] { return make_error(ErrorCode::kFailedPrecondition, "no VM yet: load a snapshot first (PUT /snapshot/load)"); };
  h.pause = none;
  h.resume = none;
  h.paused = [] { return false; };
  h.snapshot_create = [none](const std::string&, const std::string&) { return none(); };
  h.snapshot_load = [&](const std::string& state, const std::string& mem, bool r) -> Status {
    if (vm) return make_error(ErrorCode::kFailedPrecondition, "a snapshot is already loaded");
    VmConfig c = cfg;
    c.restore_state = state;
    c.restore_mem = mem;
    c.api_path.clear();
    c.api_fd = listener.get();
    auto built = MicroVm::build(c);
    if (!built) return built.error();
    vm = std::move(built.value());
    resume = r;
    return {};
  };
  h.loaded = [&io] { boost::asio::post(io, [&io] { io.stop(); }); };
  auto server = api::Server::start(io, "", waiting.release(), std::move(h));
  if (!server) {
    LOG_ERROR("%s", server.error().message.c_str());
    return 1;
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  int stopped_by = 0;
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (!ec) stopped_by = sig, io.stop();
  });
  LOG_INFO("waiting for PUT /snapshot/load on the control socket");
  io.run();
  server->reset();
  if (!vm) {
    if (!cfg.api_path.empty()) ::unlink(cfg.api_path.c_str());
    LOG_INFO("stopped by host signal %s before a snapshot was loaded", strsignal(stopped_by));
    return 128 + stopped_by;
  }
  signals.cancel();
  if (!resume) vm->start_paused();
  (void)listener.release();  // the VM's API server adopts it in run() and closes it
  int status = vm->run();
  vm.reset();
  if (!cfg.api_path.empty()) ::unlink(cfg.api_path.c_str());
  return status;
}

}  // namespace husk
