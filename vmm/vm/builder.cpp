// MicroVm::build: the order in which a VM comes together.
//  1. boot files opened and parsed, PVM refused: user errors, no KVM needed;
//  2. guest memory, device backends (disk images, taps, sockets), boot tables written;
//  3. KVM: VM, irqchip, memory slots, device interrupts and queue notifications, vCPUs.
#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "common/inherited_fd.h"
#include "common/log.h"
#include "vmm/kvm/host.h"
#include "vmm/kvm/irqfd.h"
#include "vmm/virtio/rng/rng.h"
#include "vmm/vm/microvm.h"
#include "vmm/vm/timing.h"

namespace husk {
namespace {


Result<std::vector<std::shared_ptr<virtio::Device>>> open_virtio_backends(const VmConfig& cfg) {
  std::vector<std::shared_ptr<virtio::Device>> out;
  for (const auto& d : cfg.disks) {
    auto blk = virtio::Block::open(d);
    if (!blk) return blk.error();
    out.push_back(*blk);
  }
  for (const auto& n : cfg.nics) {
    auto net = virtio::Net::open(n);
    if (!net) return net.error();
    out.push_back(*net);
  }
  if (cfg.rng) out.push_back(std::make_shared<virtio::Rng>(cfg.rng_limit));
  for (const auto& f : cfg.filesystems) {
    auto fs = virtio::Fs::open(f);
    if (!fs) return fs.error();
    out.push_back(*fs);
  }
  if (cfg.vsock) {
    auto vs = virtio::Vsock::open(*cfg.vsock);
    if (!vs) return vs.error();
    out.push_back(*vs);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<MicroVm>> MicroVm::build(const VmConfig& cfg) {
  std::unique_ptr<MicroVm> vm(new MicroVm(cfg));  // NOLINT: private constructor
  vm->platform_ = make_platform();
  Platform& platform = *vm->platform_;
  const bool restoring = !cfg.restore_state.empty();

  // A snapshot's files are checked first, like boot files: errors about them need no KVM.
  std::vector<uint8_t> state;
  std::optional<snapshot::Reader> reader;
  RestoreHeader header;
  UniqueFd mem_file;
  std::optional<boot::BootImages> images;
  if (restoring) {
    // Paths, or "fd=N": a jailed husk-vmm is handed the template's files open.
    int state_fd = -1, mem_fd = -1;
    Result<std::vector<uint8_t>> payload = make_error("unread");
    if (is_fd_spec(cfg.restore_state, &state_fd)) {
      auto fd = take_inherited_fd(state_fd);
      if (!fd) return fd.error();
      payload = snapshot::read_state_fd(fd->get(), cfg.restore_state);
    } else {
      payload = snapshot::read_state_file(cfg.restore_state);
    }
    if (!payload) return payload.error();
    state = std::move(payload.value());
    reader.emplace(state);
    auto h = read_restore_header(*reader, platform);
    if (!h) return h.error();
    header = std::move(h.value());
    if (is_fd_spec(cfg.restore_mem, &mem_fd)) {
      auto fd = take_inherited_fd(mem_fd);
      if (!fd) return fd.error();
      mem_file = std::move(fd.value());
    } else {
      mem_file.reset(::open(cfg.restore_mem.c_str(), O_RDONLY | O_CLOEXEC));
    }
    if (!mem_file)
      return make_error(ErrorCode::kInvalidArgument, "cannot open the memory file %s: %s", cfg.restore_mem.c_str(),
                        std::strerror(errno));
  } else {
    auto opened = boot::open_boot_images(cfg.boot);
    if (!opened) return opened.error();
    images.emplace(std::move(opened.value()));
  }
  const unsigned vcpus = restoring ? header.vcpus : cfg.boot.vcpus;
  if ((!cfg.boot.kernel.empty() || restoring) && !cfg.allow_pvm) {
    auto host = kvm::detect_host_kvm(cfg.sysfs_root, cfg.kvm_device);
    if (host.pvm && host.device)
      return make_error(ErrorCode::kFailedPrecondition,
                        "%s on this host is PVM (module kvm_pvm): it cannot boot a stock Linux guest (it "
                        "would run for seconds in KVM's instruction emulator and die). Boot guests inside the "
                        "husk test host instead: tests/testhost/run.sh (see README), or pass --allow-pvm to try.",
                        cfg.kvm_device.c_str());
    if (host.pvm)
      return make_error(ErrorCode::kUnavailable,
                        "this host has no %s (the kvm_pvm module is loaded but offers no device), and PVM "
                        "could not boot a stock Linux guest anyway. Boot guests inside the husk test host "
                        "instead: tests/testhost/run.sh (see README).",
                        cfg.kvm_device.c_str());
  }

  if (restoring) {
    auto mem = GuestMemory::restore(header.regions, mem_file.get());
    if (!mem) return make_error(mem.error().code, "%s: %s", cfg.restore_mem.c_str(), mem.error().message.c_str());
    vm->mem_ = std::move(mem.value());
  } else {
    auto regions = platform.ram_regions(cfg.boot.mem_mib << 20);
    auto mem = GuestMemory::create(regions);
    if (!mem) return mem.error();
    vm->mem_ = std::move(mem.value());
  }

  auto backends = open_virtio_backends(cfg);
  if (!backends) return backends.error();
  if (!restoring) {
    BootConfig boot = cfg.boot;
    if (!boot.kernel.empty()) {
      auto announce = VirtioDevices::cmdline(platform, backends->size());
      if (!announce) return announce.error();
      boot.cmdline += *announce;
    }
    HUSK_TRY(platform.load(*vm->mem_, *images, boot));
  }

  auto kvm = kvm::Kvm::open(cfg.kvm_device.c_str());
  if (!kvm) return kvm.error();
  vm->kvm_ = std::move(kvm.value());
  const kvm::Kvm& k = *vm->kvm_;
  if (k.check_extension(KVM_CAP_IRQCHIP) <= 0 || k.check_extension(KVM_CAP_IRQFD) <= 0 ||
      k.check_extension(KVM_CAP_USER_MEMORY) <= 0)
    return make_error(ErrorCode::kUnavailable, "KVM lacks a required capability (irqchip, irqfd, user memory)");
  int max_vcpus = k.check_extension(KVM_CAP_MAX_VCPUS);
  if (max_vcpus > 0 && vcpus > static_cast<unsigned>(max_vcpus))
    return make_error(ErrorCode::kInvalidArgument, "KVM supports at most %d vCPUs", max_vcpus);
  auto v = kvm::Vm::create(k);
  if (!v) return v.error();
  vm->vm_ = std::move(v.value());
  HUSK_TRY(platform.setup_vm(*vm->vm_));
  uint32_t slot = 0;
  uint64_t t = timing::now_ns();
  for (const auto& r : vm->mem_->regions())
    HUSK_TRY(vm->vm_->set_user_memory_region(slot++, r.start.value, r.size, r.host()));
  timing::note_memslot_ns(timing::now_ns() - t);

  HUSK_TRY(vm->build_devices());
  vm->virtio_.emplace();
  HUSK_TRY(vm->virtio_->attach(*backends, platform, vm->mmio_, *vm->vm_, *vm->mem_));

  auto mmap_size = k.vcpu_mmap_size();
  if (!mmap_size) return mmap_size.error();
  for (unsigned i = 0; i < vcpus; ++i) {
    auto vcpu = kvm::Vcpu::create(*vm->vm_, i, *mmap_size);
    if (!vcpu) return vcpu.error();
    HUSK_TRY(platform.setup_vcpu(k, **vcpu, vcpus));
    vm->vcpus_.push_back(std::move(vcpu.value()));
  }
  if (restoring) {
    if (auto s = vm->restore_state(*reader); !s)
      return make_error(s.error().code, "restoring %s: %s", cfg.restore_state.c_str(), s.error().message.c_str());
  }
  return vm;
}

Status MicroVm::build_devices() {
  // The guest reports it booted by the Firecracker boot-timer MMIO write or by its ready line on
  // the console, whichever comes first; the figure is printed once.
  auto booted = [this] {
    std::call_once(boot_reported_, [] {
      uint64_t now = timing::now_ns();
      std::fprintf(stderr, "husk-vmm: boot-timer: guest booted in %llu us (first KVM_RUN at %llu us)\n",
                   (unsigned long long)timing::since_start_us(now),
                   (unsigned long long)timing::since_start_us(timing::first_run_ns()));
    });
  };
  auto out = ConsoleOutput::open(cfg_, stop_, booted);
  if (!out) return out.error();
  console_out_ = *out;
  DeviceWiring wiring{
      pio_, mmio_,
      [this](uint32_t gsi) -> Result<std::shared_ptr<Interrupt>> {
        auto irq = kvm::IrqfdInterrupt::create(*vm_, gsi);
        if (!irq) return irq.error();
        return std::shared_ptr<Interrupt>(*irq);
      },
      [out = console_out_](uint8_t b) { out->put(b); },
      [this] { stop_.request(StopReason::kReset); },
      booted};
  auto devices = platform_->create_devices(wiring);
  if (!devices) return devices.error();
  devices_ = *devices;
  return {};
}

}  // namespace husk
