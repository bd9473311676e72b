#include "vmm/vm/microvm.h"

#include <pthread.h>
#include <signal.h>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "common/log.h"
#include "vmm/vm/timing.h"
#include "vmm/virtio/rng/rng.h"

namespace husk {
namespace {

constexpr int kKickSignal = SIGUSR1;
std::atomic<uint64_t> g_first_run_ns{0};
uint64_t g_memslot_ns = 0;  // time inside KVM_SET_USER_MEMORY_REGION (SRCU sync in the kernel)

Result<GuestMemory> guest_memory(const Platform& p, const VmConfig& cfg) {
  auto regions = p.ram_regions(cfg.mem_mib << 20);
  // vhost-user backends map guest memory themselves: it must live in shareable memfds.
  return cfg.filesystems.empty() ? GuestMemory::create(regions) : GuestMemory::create_shared(regions);
}

GuestMemory must(Result<GuestMemory> r) {
  if (!r) throw std::runtime_error(r.error().message);
  return std::move(r).value();
}

void check(const Status& s) {
  if (!s) throw std::runtime_error(s.error().message);
}

void install_kick_handler() {
  struct sigaction sa{};
  sa.sa_handler = [](int) {};  // only interrupts KVM_RUN; no SA_RESTART on purpose
  sigemptyset(&sa.sa_mask);
  ::sigaction(kKickSignal, &sa, nullptr);
}

}  // namespace

MicroVm::MicroVm(const VmConfig& cfg)
    : cfg_(cfg),
      kvm_(kvm::Kvm::open()),
      vm_(kvm_),
      platform_(make_platform()),
      mem_(must(guest_memory(*platform_, cfg))) {
  if (kvm_.check_extension(KVM_CAP_IRQCHIP) <= 0 || kvm_.check_extension(KVM_CAP_IRQFD) <= 0 ||
      kvm_.check_extension(KVM_CAP_USER_MEMORY) <= 0)
    throw std::runtime_error("KVM lacks a required capability (irqchip, irqfd, user memory)");
  int max_vcpus = kvm_.check_extension(KVM_CAP_MAX_VCPUS);
  if (max_vcpus > 0 && cfg.vcpus > static_cast<unsigned>(max_vcpus))
    throw std::runtime_error("KVM supports at most " + std::to_string(max_vcpus) + " vCPUs");

  platform_->setup_vm(vm_);
  uint32_t slot = 0;
  uint64_t t = timing::now_ns();
  for (const auto& r : mem_.regions()) vm_.set_user_memory_region(slot++, r.start.value, r.size, r.host());
  g_memslot_ns = timing::now_ns() - t;

  auto out = ConsoleOutput::open(cfg_, stop_);
  if (!out) throw std::runtime_error(out.error().message);
  console_out_ = *out;
  DeviceWiring wiring{
      pio_, mmio_, vm_, [out = console_out_](uint8_t b) { out->put(b); },
      [this] { stop_.request(StopReason::kReset); },
      [] {
        uint64_t now = timing::now_ns();
        std::fprintf(stderr, "husk-vmm: boot-timer: guest booted in %llu us (first KVM_RUN at %llu us)\n",
                     (unsigned long long)timing::since_start_us(now),
                     (unsigned long long)timing::since_start_us(g_first_run_ns.load()));
      }};
  auto devices = platform_->create_devices(wiring);
  if (!devices) throw std::runtime_error(devices.error().message);
  devices_ = *devices;

  std::vector<std::shared_ptr<virtio::Device>> virtio_devices;
  for (const auto& d : cfg_.disks) {
    auto blk = virtio::Block::open(d);
    if (!blk) throw std::runtime_error(blk.error().message);
    virtio_devices.push_back(*blk);
  }
  for (const auto& n : cfg_.nics) {
    auto net = virtio::Net::open(n);
    if (!net) throw std::runtime_error(net.error().message);
    virtio_devices.push_back(*net);
  }
  if (cfg_.rng) virtio_devices.push_back(std::make_shared<virtio::Rng>());
  for (const auto& f : cfg_.filesystems) {
    auto fs = virtio::Fs::open(f);
    if (!fs) throw std::runtime_error(fs.error().message);
    virtio_devices.push_back(*fs);
  }
  if (cfg_.vsock) {
    auto vs = virtio::Vsock::open(*cfg_.vsock);
    if (!vs) throw std::runtime_error(vs.error().message);
    virtio_devices.push_back(*vs);
  }
  auto announce = virtio_.attach(virtio_devices, *platform_, mmio_, vm_, mem_);
  if (!announce) throw std::runtime_error(announce.error().message);
  if (!cfg_.kernel.empty()) cfg_.cmdline += *announce;

  check(platform_->load(mem_, cfg_));
  // Checked after loading, so a broken kernel file is reported as such on every host.
  if (!cfg_.kernel.empty() && kvm::is_pvm() && !cfg_.allow_pvm)
    throw std::runtime_error(
        "/dev/kvm on this host is PVM (module kvm_pvm): it cannot boot a stock Linux guest (it "
        "would run for seconds in KVM's instruction emulator and die). Boot guests inside the "
        "husk test host instead: tests/testhost/run.sh (see README), or pass --allow-pvm to try.");

  size_t mmap_size = kvm_.vcpu_mmap_size();
  for (unsigned i = 0; i < cfg_.vcpus; ++i) {
    vcpus_.push_back(std::make_unique<kvm::Vcpu>(vm_, i, mmap_size));
    platform_->setup_vcpu(kvm_, *vcpus_.back(), cfg_.vcpus);
  }
}

MicroVm::~MicroVm() {
  stop_.request(StopReason::kVmError, "VMM shutting down");
  kick_vcpus();
  threads_.clear();  // joins
}

void MicroVm::kick_vcpus() {
  for (auto& v : vcpus_) v->run_struct()->immediate_exit = 1;
  for (auto& t : threads_)
    if (t.joinable()) ::pthread_kill(t.native_handle(), kKickSignal);
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
  virtio_.start(io_);
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
                 (unsigned long long)timing::since_start_us(g_first_run_ns.load()),
                 (unsigned long long)(g_memslot_ns / 1000));
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

void MicroVm::vcpu_loop(kvm::Vcpu& vcpu) {
  // The kick signal must reach this thread even if the parent blocked it.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kKickSignal);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);

  while (!stop_.requested()) {
    if (vcpu.id() == 0 && g_first_run_ns.load(std::memory_order_relaxed) == 0)
      g_first_run_ns = timing::now_ns();
    int r = vcpu.run();
    if (r == -EINTR || r == -EAGAIN) {
      vcpu.run_struct()->immediate_exit = 0;
      continue;
    }
    if (r < 0) {
      stop_.request(StopReason::kVmError, std::string("KVM_RUN failed: ") + std::strerror(-r));
      return;
    }
    if (!handle_exit(vcpu)) return;
  }
}

bool MicroVm::handle_exit(kvm::Vcpu& vcpu) {
  kvm_run* run = vcpu.run_struct();
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      auto& io = run->io;
      uint64_t bytes = uint64_t{io.size} * io.count;
      if (io.size == 0 || io.size > 8 || io.data_offset > vcpu.run_size() ||
          bytes > vcpu.run_size() - io.data_offset) {
        stop_.request(StopReason::kVmError, "malformed port I/O exit");
        return false;
      }
      auto* data = reinterpret_cast<uint8_t*>(run) + io.data_offset;
      for (uint32_t i = 0; i < io.count; ++i) {
        std::span<uint8_t> d(data + i * io.size, io.size);
        if (io.direction == KVM_EXIT_IO_OUT) {
          pio_.write(io.port, d);
        } else if (!pio_.read(io.port, d)) {
          std::fill(d.begin(), d.end(), 0xff);  // floating bus: no device here
        }
      }
      return true;
    }
    case KVM_EXIT_MMIO: {
      auto& m = run->mmio;
      if (m.len == 0 || m.len > 8) {
        stop_.request(StopReason::kVmError, "malformed MMIO exit");
        return false;
      }
      std::span<uint8_t> d(m.data, m.len);
      if (m.is_write) {
        if (!mmio_.write(m.phys_addr, d))
          LOG_DEBUG("guest wrote to unassigned MMIO 0x%llx", (unsigned long long)m.phys_addr);
      } else if (!mmio_.read(m.phys_addr, d)) {
        std::fill(d.begin(), d.end(), 0xff);
      }
      return true;
    }
    case KVM_EXIT_HLT:  // only without an in-kernel LAPIC: the CPU stopped for good
      stop_.request(StopReason::kPowerOff);
      return false;
    case KVM_EXIT_SHUTDOWN:
      stop_.request(StopReason::kTripleFault);
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run->system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN: stop_.request(StopReason::kPowerOff); break;
        case KVM_SYSTEM_EVENT_RESET: stop_.request(StopReason::kReset); break;
        case KVM_SYSTEM_EVENT_CRASH: stop_.request(StopReason::kGuestPanic, "crash event"); break;
        default:
          stop_.request(StopReason::kVmError,
                        "unknown system event " + std::to_string(run->system_event.type));
      }
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      stop_.request(StopReason::kVmError,
                    make_error("KVM could not enter the guest (hardware reason 0x%llx)",
                               (unsigned long long)run->fail_entry.hardware_entry_failure_reason)
                        .message);
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      stop_.request(StopReason::kVmError,
                    "KVM internal error, suberror " + std::to_string(run->internal.suberror) +
                        " (an instruction KVM could not emulate?)");
      return false;
    default:
      stop_.request(StopReason::kVmError, "unhandled KVM exit reason " + std::to_string(run->exit_reason));
      return false;
  }
}

}  // namespace husk
