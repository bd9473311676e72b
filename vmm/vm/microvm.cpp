#include "vmm/vm/microvm.h"

#include <pthread.h>
#include <signal.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
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

int MicroVm::run() {
  install_kick_handler();
  stop_.set_notify([this] { boost::asio::post(io_, [this] { io_.stop(); }); });

  boost::asio::signal_set signals(io_, SIGINT, SIGTERM, SIGHUP);
  signals.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    signal_ = sig;
    stop_.request(StopReason::kSignal, std::string("host signal ") + strsignal(sig));
  });
  virtio_->start(io_);
  std::shared_ptr<ConsoleInput> input;
  if (cfg_.console == ConsoleMode::kStdio) {
    input = std::make_shared<ConsoleInput>(io_, devices_.console);
    input->start();
  }

  for (auto& v : vcpus_) {
    kvm::Vcpu* vp = v.get();
    threads_.emplace_back([this, vp] { vcpu_loop(*vp); });
  }
  auto guard = boost::asio::make_work_guard(io_);
  io_.run();

  kick_vcpus();
  threads_.clear();
  input.reset();

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
    case StopReason::kTripleFault: LOG_ERROR("guest triple fault (KVM_EXIT_SHUTDOWN): the guest CPU reset itself on an unrecoverable fault"); break;
    case StopReason::kVmError: LOG_ERROR("VM stopped: %s", detail.c_str()); break;
    case StopReason::kSignal: LOG_INFO("stopped by %s", detail.c_str()); break;
    case StopReason::kNone: break;
  }
  return exit_status(reason, signal_.load());
}

}  // namespace husk
