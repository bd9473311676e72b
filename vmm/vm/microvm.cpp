#include "vmm/vm/microvm.h"

#include <pthread.h>
#include <signal.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "vmm/seccomp/filters.h"
#include "vmm/vm/timing.h"

namespace husk {

static_assert(MicroVm::kKickSignal == SIGUSR1);

namespace {

void install_kick_handler() {
  struct sigaction sa{};
  sa.sa_handler = [](int) {};  // only interrupts KVM_RUN; no SA_RESTART on purpose
  sigemptyset(&sa.sa_mask);
  ::sigaction(MicroVm::kKickSignal, &sa, nullptr);
}

}  // namespace

MicroVm::~MicroVm() { teardown(); }

void MicroVm::kick_vcpus() {
  for (auto& v : vcpus_) v->run_struct()->immediate_exit = 1;
  for (auto& t : threads_)
    if (t.joinable()) ::pthread_kill(t.native_handle(), kKickSignal);
}

void MicroVm::teardown() {
  stop_.request(StopReason::kVmError, "VMM shutting down");
  kick_vcpus();
  threads_.clear();  // joins
  // The VM goes before its memory. Unmapping guest RAM while the VM still exists makes KVM
  // zap its page tables through the MMU notifier, range by range, with remote TLB flushes;
  // closing the vCPU and VM descriptors first frees them in one pass (kvm_destroy_vm), after
  // which the unmap is plain memory management. Devices go first: their irqfds and ioeventfds
  // belong to the VM.
  virtio_.reset();
  devices_ = {};
  vcpus_.clear();
  vm_.reset();
  kvm_.reset();
  mem_.reset();
}

std::string MicroVm::metrics() const {
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& c : virtio_->counters())
    devices.push_back({{"type", virtio::device_type_name(c.type)}, {"notifications", c.notifications}, {"interrupts", c.interrupts}});
  return nlohmann::json{{"uptime_ms", timing::since_start_us(timing::now_ns()) / 1000},
                        {"state", paused() ? "Paused" : "Running"},
                        {"vcpus", {{"count", vcpus_.size()},
                                   {"io_exits", io_exits_.load(std::memory_order_relaxed)},
                                   {"mmio_exits", mmio_exits_.load(std::memory_order_relaxed)}}},
                        {"virtio", devices}}
      .dump();
}

int MicroVm::run() {
  install_kick_handler();
  stop_.set_notify([this] {
    boost::asio::post(io_, [this] { io_.stop(); });
    std::lock_guard l(pause_mu_);  // a paused vCPU must see the stop
    pause_cv_.notify_all();
  });

  boost::asio::signal_set signals(io_, SIGINT, SIGTERM, SIGHUP);
  if (cfg_.test_forbidden_syscall) signals.add(SIGUSR2);
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGUSR2) {  // tests: make vCPU 0 break its seccomp filter
      forbidden_requested_ = true;
      if (!threads_.empty()) ::pthread_kill(threads_[0].native_handle(), kKickSignal);
      signals.async_wait(on_signal);
      return;
    }
    signal_ = sig;
    stop_.request(StopReason::kSignal, std::string("host signal ") + strsignal(sig));
  };
  signals.async_wait(on_signal);

  // Filters are compiled here, installed by each thread on itself (vcpu_loop, below) before
  // the start barrier lets any vCPU enter the guest.
  using vmm_seccomp::shared_rules;
  auto vcpu_filter = seccomp::compile(seccomp::join({&shared_rules(), &vmm_seccomp::vcpu_rules()}), cfg_.seccomp);
  bool api = !cfg_.api_path.empty() || cfg_.api_fd >= 0;
  static const std::vector<seccomp::Rule> kNone;
  auto loop_filter = seccomp::compile(
      seccomp::join({&shared_rules(), &vmm_seccomp::event_loop_rules(), api ? &vmm_seccomp::api_rules() : &kNone}),
      cfg_.seccomp);
  if (!vcpu_filter || !loop_filter) {
    LOG_ERROR("seccomp: %s", (!vcpu_filter ? vcpu_filter.error() : loop_filter.error()).message.c_str());
    return 1;
  }
  virtio_->start(io_);
  if (api) {
    api::Handlers h{[this] { return pause(); }, [this] { return resume(); }, [this] { return paused(); },
                    [this](const std::string& state, const std::string& mem) { return snapshot(state, mem); },
                    nullptr, nullptr,  // running: no snapshot to load
                    [this] { return metrics(); }};
    auto server = api::Server::start(io_, cfg_.api_path, cfg_.api_fd, std::move(h));
    if (!server) {
      LOG_ERROR("%s", server.error().message.c_str());
      return 1;
    }
    api_ = std::move(server.value());
  }
  std::shared_ptr<ConsoleInput> input;
  if (cfg_.console == ConsoleMode::kStdio) {
    input = std::make_shared<ConsoleInput>(io_, devices_.console);
    input->start();
  }

  std::barrier<> start(static_cast<std::ptrdiff_t>(vcpus_.size()) + 1);
  for (auto& v : vcpus_) {
    kvm::Vcpu* vp = v.get();
    threads_.emplace_back([this, vp, &vcpu_filter, &start] { vcpu_loop(*vp, *vcpu_filter, start); });
  }
  if (auto s = loop_filter->install(); !s) stop_.request(StopReason::kVmError, "seccomp: " + s.error().message);
  start.arrive_and_wait();
  auto guard = boost::asio::make_work_guard(io_);
  io_.run();

  kick_vcpus();
  threads_.clear();
  input.reset();
  api_.reset();

  if (std::getenv("HUSK_EXEC_T0_NS"))  // a benchmark harness is measuring us
    std::fprintf(stderr,
                 "husk-vmm: timing: first KVM_RUN at %llu us after exec (%llu us of it inside "
                 "KVM_SET_USER_MEMORY_REGION)\n",
                 (unsigned long long)timing::since_start_us(timing::first_run_ns()),
                 (unsigned long long)(timing::memslot_ns() / 1000));
  StopReason reason = stop_.reason();
  std::string detail = stop_.detail();
  switch (reason) {
    case StopReason::kReset: LOG_DEBUG("guest reset: stopping"); break;
    case StopReason::kPowerOff: LOG_DEBUG("guest powered off"); break;
    case StopReason::kGuestPanic: LOG_ERROR("guest kernel panicked"); break;
    case StopReason::kTripleFault:
      LOG_ERROR("guest triple fault (KVM_EXIT_SHUTDOWN): the guest CPU reset itself on an unrecoverable fault (%s)", detail.c_str());
      break;
    case StopReason::kVmError: LOG_ERROR("VM stopped: %s", detail.c_str()); break;
    case StopReason::kSignal: LOG_INFO("stopped by %s", detail.c_str()); break;
    case StopReason::kNone: break;
  }
  return exit_status(reason, signal_.load());
}

}  // namespace husk
