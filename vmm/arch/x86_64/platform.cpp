#include "vmm/arch/x86_64/platform.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/log.h"
#include "vmm/arch/x86_64/boot_params.h"
#include "vmm/arch/x86_64/cpuid.h"
#include "vmm/arch/x86_64/layout.h"
#include "vmm/arch/x86_64/mptable.h"
#include "vmm/devices/boot_timer.h"
#include "vmm/devices/i8042.h"

namespace husk {

std::unique_ptr<Platform> make_platform() { return std::make_unique<x86::X86Platform>(); }

namespace x86 {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint32_t kLapicLvtLint0 = 0x350, kLapicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryExtInt = 7, kDeliveryNmi = 4;

void set_lvt_delivery(kvm_lapic_state& l, uint32_t reg, uint32_t mode) {
  uint32_t v;
  std::memcpy(&v, l.regs + reg, sizeof v);
  v = (v & ~0x700u) | (mode << 8);
  std::memcpy(l.regs + reg, &v, sizeof v);
}

}  // namespace

std::vector<RamRegion> X86Platform::ram_regions(uint64_t bytes) const {
  return layout::ram_regions(bytes);
}

Status X86Platform::setup_vm(kvm::Vm& vm) {
  // Intel VMX needs these three pages for real-mode emulation; harmless elsewhere.
  HUSK_TRY(vm.set_tss_addr(layout::kTssAddr));
  HUSK_TRY(vm.set_identity_map_addr(layout::kIdentityMapAddr));
  HUSK_TRY(vm.create_irqchip());
  return vm.create_pit2();
}

Status X86Platform::load(GuestMemory& mem, const boot::BootImages& images, const BootConfig& cfg) {
  if (auto s = images.raw ? load_raw(mem, *images.raw) : load_linux(mem, images, cfg); !s) return s;
  if (auto s = write_page_tables(mem); !s) return s;
  if (auto s = write_gdt(mem); !s) return s;
  return write_mptable(mem, cfg.vcpus);
}

Status X86Platform::load_raw(GuestMemory& mem, const boot::OpenFile& image) {
  if (auto s = mem.load_file(GuestAddress(layout::kHimem), image.fd.get(), 0, image.size); !s)
    return make_error(ErrorCode::kInvalidArgument, "image %s does not fit in guest memory: %s", image.path.c_str(),
                      s.error().message.c_str());
  entry_ = layout::kHimem;
  boot_info_ = 0;
  mode_ = EntryMode::kLong64;
  return {};
}

Status X86Platform::load_linux(GuestMemory& mem, const boot::BootImages& images, const BootConfig& cfg) {
  const boot::OpenFile* kf = &*images.kernel;
  const boot::ElfImage* img = &*images.elf;

  uint64_t kernel_end = 0;
  for (const auto& seg : img->segments) {
    if (seg.paddr < layout::kHimem)
      return make_error("kernel segment at 0x%llx would overwrite the boot area below 1 MiB",
                        (unsigned long long)seg.paddr);
    if (!mem.contains(GuestAddress(seg.paddr), seg.memsz))
      return make_error("kernel segment 0x%llx+0x%llx does not fit in %llu MiB of guest memory",
                        (unsigned long long)seg.paddr, (unsigned long long)seg.memsz,
                        (unsigned long long)cfg.mem_mib);
    if (auto s = mem.load_file(GuestAddress(seg.paddr), kf->fd.get(), seg.offset, seg.filesz); !s)
      return s;
    if (auto s = mem.fill(GuestAddress(seg.paddr + seg.filesz), seg.memsz - seg.filesz, 0); !s)
      return s;
    kernel_end = std::max(kernel_end, seg.paddr + seg.memsz);
  }

  std::optional<InitrdPlacement> initrd;
  if (images.initrd) {
    const boot::OpenFile* f = &*images.initrd;
    // Highest page-aligned spot in low memory, like Firecracker: far from the kernel, which
    // decompresses nothing here but allocates upward from its end.
    uint64_t low_end = std::min(mem.regions()[0].size, layout::kMmioGapStart);
    if (f->size == 0 || f->size > low_end)
      return make_error(ErrorCode::kInvalidArgument, "initrd %s is larger than guest memory", f->path.c_str());
    uint64_t addr = (low_end - f->size) & ~(kPage - 1);
    if (addr < kernel_end)
      return make_error(ErrorCode::kInvalidArgument, "initrd %s (%llu MiB) does not fit above the kernel in %llu MiB of memory",
                        f->path.c_str(), (unsigned long long)(f->size >> 20),
                        (unsigned long long)cfg.mem_mib);
    if (auto s = mem.load_file(GuestAddress(addr), f->fd.get(), 0, f->size); !s) return s;
    initrd = InitrdPlacement{addr, f->size};
  }

  if (auto s = write_cmdline(mem, cfg.cmdline); !s) return s;
  std::vector<RamRegion> ram;
  for (const auto& r : mem.regions()) ram.push_back(RamRegion{r.start, r.size});
  if (cfg.pvh) {
    if (auto s = write_pvh_start_info(mem, ram, initrd); !s) return s;
    entry_ = *img->pvh_entry;
    boot_info_ = layout::kPvhStartInfo;
    mode_ = EntryMode::kProtected32;
    return {};
  }
  auto bp = make_boot_params(ram, layout::kCmdline, static_cast<uint32_t>(cfg.cmdline.size() + 1),
                             initrd);
  if (!bp) return bp.error();
  if (auto s = mem.write_obj(GuestAddress(layout::kZeroPage), *bp); !s) return s;
  entry_ = img->entry;
  boot_info_ = layout::kZeroPage;
  mode_ = EntryMode::kLong64;
  return {};
}

Status X86Platform::setup_vcpu(const kvm::Kvm& kvm, kvm::Vcpu& vcpu, unsigned vcpu_count) {
  if (!supported_cpuid_) {
    auto cpuid = kvm.supported_cpuid();
    if (!cpuid) return cpuid.error();
    auto known = kvm.msr_index_list();
    if (!known) return known.error();
    supported_cpuid_ = std::move(cpuid.value());
    for (const auto& m : boot_msrs())
      if (std::find(known->begin(), known->end(), m.index) != known->end()) msrs_.push_back(m);
  }
  auto cpuid = *supported_cpuid_;
  setup_cpuid(cpuid, CpuidTopology{vcpu.id(), vcpu_count},
              CpuidOptions{vcpu.tsc_khz(), kvm.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0});
  HUSK_TRY(vcpu.set_cpuid(cpuid));
  auto n = vcpu.set_msrs(msrs_);
  if (!n) return n.error();
  if (*n != static_cast<int>(msrs_.size()))
    LOG_WARN("KVM accepted %d of %zu boot MSRs (first refused: 0x%x)", *n, msrs_.size(),
             msrs_[static_cast<size_t>(*n)].index);

  auto lapic = vcpu.get_lapic();
  if (!lapic) return lapic.error();
  set_lvt_delivery(*lapic, kLapicLvtLint0, kDeliveryExtInt);
  set_lvt_delivery(*lapic, kLapicLvtLint1, kDeliveryNmi);
  HUSK_TRY(vcpu.set_lapic(*lapic));

  // Application processors stay in wait-for-SIPI; the guest starts them itself.
  if (vcpu.id() != 0) return {};
  HUSK_TRY(vcpu.set_fpu(boot_fpu()));
  auto sregs = vcpu.get_sregs();
  if (!sregs) return sregs.error();
  HUSK_TRY(vcpu.set_sregs(boot_sregs(*sregs, mode_)));
  return vcpu.set_regs(boot_regs(entry_, boot_info_, mode_));
}

Result<PlatformDevices> X86Platform::create_devices(DeviceWiring& w) {
  PlatformDevices d;
  auto irq = w.make_irq(Serial::kCom1Irq);
  if (!irq) return irq.error();
  d.console = std::make_shared<Serial>(*irq, w.console_out);
  if (auto s = w.pio.insert(Serial::kCom1, 8, d.console); !s) return s.error();
  if (auto s = w.pio.insert(I8042::kBase, I8042::kLen, std::make_shared<I8042>(w.on_reset)); !s)
    return s.error();
  if (auto s = w.mmio.insert(layout::kBootTimer, BootTimer::kLen,
                             std::make_shared<BootTimer>(w.on_boot));
      !s)
    return s.error();
  return d;
}

Result<Platform::MmioSlot> X86Platform::virtio_slot(unsigned index) const {
  // IRQs 5-23 on the IOAPIC (the MP table lists them); 0-4 are timer, keyboard, cascade, COM2,
  // COM1.
  constexpr unsigned kFirstIrq = 5, kLastIrq = kIoapicPins - 1;
  if (index > kLastIrq - kFirstIrq)
    return make_error("at most %u virtio devices", kLastIrq - kFirstIrq + 1);
  return MmioSlot{layout::kVirtioMmioBase + uint64_t{index} * 0x1000, kFirstIrq + index};
}

std::string X86Platform::describe_vcpu(const kvm::Vcpu& vcpu) const {
  const std::string who = "vCPU " + std::to_string(vcpu.id()) + ": ";
  auto regs = vcpu.get_regs();
  auto sregs = vcpu.get_sregs();
  if (!regs || !sregs) return who + "registers unreadable";
  // AMD's SVM leaves the guest state undefined at a shutdown intercept, so KVM resets the vCPU
  // there: what is left is the reset vector, not where the guest died (Intel keeps it).
  if (regs->rip == 0xfff0 && sregs->cs.selector == 0xf000 && sregs->cr0 == 0x60000010)
    return who + "KVM reset it at the shutdown (AMD), no registers to show";
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "rip 0x%llx rsp 0x%llx rflags 0x%llx cs 0x%x cr0 0x%llx cr2 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx "
                "idt 0x%llx+0x%x",
                (unsigned long long)regs->rip, (unsigned long long)regs->rsp, (unsigned long long)regs->rflags,
                sregs->cs.selector, (unsigned long long)sregs->cr0, (unsigned long long)sregs->cr2,
                (unsigned long long)sregs->cr3, (unsigned long long)sregs->cr4, (unsigned long long)sregs->efer,
                (unsigned long long)sregs->idt.base, sregs->idt.limit);
  std::string s = who + buf;
  if (auto events = vcpu.get_vcpu_events(); events && events->exception.injected)
    s += " pending exception " + std::to_string(events->exception.nr);
  return s;
}

}  // namespace x86
}  // namespace husk
