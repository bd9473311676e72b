#include "shim/process.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/unique_fd.h"
#include "guest-agent/client/stdio.h"

namespace husk::shim {

namespace v1 = agent::v1;

Process::~Process() {
  {
    std::lock_guard lk(mu_);
    for (auto* ctx : {out_ctx_.get(), err_ctx_.get(), in_ctx_.get(), wait_ctx_.get()})
      if (ctx) ctx->TryCancel();
  }
  // The waiter first: it joins the output copies itself before it finishes.
  for (auto* t : {&waiter_, &out_, &err_}) {
    if (!t->joinable()) continue;
    // The waiter may hold the last reference after Delete erased the process.
    if (t->get_id() == std::this_thread::get_id())
      t->detach();
    else
      t->join();
  }
}

v1::ProcessRequest Process::request() const {
  v1::ProcessRequest r;
  r.set_container_id(spec_.container_id);
  r.set_exec_id(spec_.exec_id);
  return r;
}

uint32_t Process::pid() const {
  std::lock_guard lk(mu_);
  return pid_;
}

void Process::set_pid(uint32_t pid) {
  std::lock_guard lk(mu_);
  pid_ = pid;
}

Status Process::check(const std::function<Status(ProcessState&)>& transition) {
  std::lock_guard lk(mu_);
  ProcessState copy = st_;
  return transition(copy);
}

void Process::start_io(std::shared_ptr<AgentStub> agent) {
  // Output: agent stream → FIFO. Opened read-write so a reader that goes away never makes a
  // write fail with EPIPE, and the open never blocks.
  auto pump = [&](bool is_err) {
    const std::string& path = is_err ? spec_.stderr_path : spec_.stdout_path;
    if (path.empty()) return;
    UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) {
      LOG_WARN("opening %s: %s", path.c_str(), strerror(errno));
      return;
    }
    auto ctx = std::make_shared<grpc::ClientContext>();
    {
      std::lock_guard lk(mu_);
      (is_err ? err_ctx_ : out_ctx_) = ctx;
    }
    (is_err ? err_ : out_) = std::thread([this, agent, ctx, is_err, fd = std::move(fd)] {
      agent_client::copy_output(*agent, *ctx, spec_.container_id, spec_.exec_id, is_err, fd.get());
    });
  };
  pump(false);
  if (!spec_.terminal) pump(true);
  if (spec_.stdin_path.empty()) return;
  // Input: FIFO → agent. The open blocks until containerd's side opens for writing; detached
  // because containerd may never do so. It holds copies of what it uses, not `this`.
  auto ctx = std::make_shared<grpc::ClientContext>();
  {
    std::lock_guard lk(mu_);
    in_ctx_ = ctx;
  }
  std::thread([agent, ctx, path = spec_.stdin_path, cid = spec_.container_id, eid = spec_.exec_id] {
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd) agent_client::copy_input(*agent, *ctx, cid, eid, fd.get());
  }).detach();
}

void Process::start_waiter(std::shared_ptr<AgentStub> agent, std::function<void(Process&, Exit)> on_exit) {
  auto ctx = std::make_shared<grpc::ClientContext>();
  {
    std::lock_guard lk(mu_);
    wait_ctx_ = ctx;
  }
  waiter_ = std::thread([this, self = shared_from_this(), agent, ctx, on_exit = std::move(on_exit)] {
    v1::WaitProcessResponse resp;
    auto s = agent->WaitProcess(ctx.get(), request(), &resp);
    // The agent answers Wait once its streams delivered everything; let our copies finish
    // writing into the FIFOs before anyone hears of the exit.
    if (out_.joinable()) out_.join();
    if (err_.joinable()) err_.join();
    Exit e;
    if (s.ok()) {
      e.status = static_cast<uint32_t>(resp.exit_status());
      e.at.tv_sec = resp.exited_at().seconds();
      e.at.tv_nsec = resp.exited_at().nanos();
    } else {
      e.status = 255;
      e.agent_lost = true;
      clock_gettime(CLOCK_REALTIME, &e.at);
    }
    {
      std::lock_guard lk(mu_);
      st_.exited(e.status, e.at);
      e.status = st_.exit_status(), e.at = st_.exited_at();  // the first exit wins
    }
    on_exit(*this, e);
    {
      std::lock_guard lk(mu_);
      exit_reported_ = true;
    }
    cv_.notify_all();
  });
}

Process::Exit Process::wait_exit() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return exit_reported_ || st_.status() == ProcessState::Status::kDeleted; });
  return Exit{st_.exit_status(), st_.exited_at()};
}

void Process::notify_deleted() { cv_.notify_all(); }

void Process::cancel_stdin() {
  std::lock_guard lk(mu_);
  if (in_ctx_) in_ctx_->TryCancel();
}

}  // namespace husk::shim
