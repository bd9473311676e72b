// x86_64 snapshot state: what KVM holds for the VM (PIC, IOAPIC, PIT, kvmclock) and for each
// vCPU. The save and restore orders are KVM's, as Firecracker and QEMU follow them:
//  - MP state first on save: KVM_GET_MP_STATE delivers pending INIT/SIPI into the LAPIC;
//  - LAPIC before the MSRs on restore: the TSC-deadline MSR lands in the LAPIC timer;
//  - vCPU events last: they carry pending exceptions and interrupts that the other SET ioctls
//    may have disturbed.
#include <algorithm>

#include "vmm/arch/x86_64/platform.h"

namespace husk::x86 {
namespace {
constexpr uint32_t kIrqchips = 3;  // PIC master, PIC slave, IOAPIC
}

Status X86Platform::save_vm(const kvm::Vm& vm, snapshot::Writer& w) {
  auto pit = vm.get_pit2();
  if (!pit) return pit.error();
  auto clock = vm.get_clock();
  if (!clock) return clock.error();
  w.pod(*pit);
  w.pod(*clock);
  for (uint32_t chip = 0; chip < kIrqchips; ++chip) {
    auto c = vm.get_irqchip(chip);
    if (!c) return c.error();
    w.pod(*c);
  }
  return {};
}

Status X86Platform::restore_vm(kvm::Vm& vm, snapshot::Reader& r) {
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
  kvm_irqchip chips[kIrqchips]{};
  r.pod(&pit, "PIT state");
  r.pod(&clock, "kvmclock");
  for (uint32_t chip = 0; chip < kIrqchips; ++chip) {
    r.pod(&chips[chip], "interrupt controller state");
    if (r.ok() && chips[chip].chip_id != chip) r.fail("interrupt controller state", "names the wrong chip");
  }
  HUSK_TRY(r.status());
  HUSK_TRY(vm.set_pit2(pit));
  HUSK_TRY(vm.set_clock(clock));
  for (const auto& c : chips) HUSK_TRY(vm.set_irqchip(c));
  return {};
}

Status X86Platform::save_vcpu(const kvm::Kvm& kvm, const kvm::Vcpu& vcpu, snapshot::Writer& w) {
  if (!snapshot_msrs_) {
    // Every MSR KVM lists that this vCPU can read. KVM_GET_MSRS stops at the first it cannot:
    // drop that one and ask again.
    auto list = kvm.msr_index_list();
    if (!list) return list.error();
    std::vector<kvm_msr_entry> msrs;
    for (uint32_t index : *list) msrs.push_back(kvm_msr_entry{index, 0, 0});
    for (;;) {
      auto n = vcpu.get_msrs(msrs);
      if (!n) return n.error();
      if (static_cast<size_t>(*n) >= msrs.size()) break;
      msrs.erase(msrs.begin() + *n);
    }
    snapshot_msrs_ = std::move(msrs);
  }
  auto mp = vcpu.get_mp_state();
  if (!mp) return mp.error();
  auto regs = vcpu.get_regs();
  if (!regs) return regs.error();
  auto sregs = vcpu.get_sregs();
  if (!sregs) return sregs.error();
  auto xsave = vcpu.get_xsave(kvm.xsave_size());
  if (!xsave) return xsave.error();
  auto xcrs = vcpu.get_xcrs();
  if (!xcrs) return xcrs.error();
  auto debug = vcpu.get_debugregs();
  if (!debug) return debug.error();
  auto lapic = vcpu.get_lapic();
  if (!lapic) return lapic.error();
  std::vector<kvm_msr_entry> msrs = *snapshot_msrs_;
  auto n = vcpu.get_msrs(msrs);
  if (!n) return n.error();
  if (static_cast<size_t>(*n) != msrs.size())
    return make_error("KVM_GET_MSRS read %d of %zu MSRs on vCPU %u", *n, msrs.size(), vcpu.id());
  auto events = vcpu.get_vcpu_events();
  if (!events) return events.error();

  w.pod(*mp);
  w.pod(*regs);
  w.pod(*sregs);
  w.blob(*xsave);
  w.pod(*xcrs);
  w.pod(*debug);
  w.pod(*lapic);
  w.u32(static_cast<uint32_t>(msrs.size()));
  for (const auto& m : msrs) w.pod(m);
  w.pod(*events);
  w.u32(vcpu.tsc_khz());
  return {};
}

Status X86Platform::restore_vcpu(const kvm::Kvm& kvm, kvm::Vcpu& vcpu, snapshot::Reader& r) {
  kvm_mp_state mp{};
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_xcrs xcrs{};
  kvm_debugregs debug{};
  kvm_lapic_state lapic{};
  kvm_vcpu_events events{};
  r.pod(&mp, "vCPU MP state");
  r.pod(&regs, "vCPU registers");
  r.pod(&sregs, "vCPU system registers");
  auto xs = r.blob("vCPU XSAVE state");
  std::vector<uint8_t> xsave(xs.begin(), xs.end());
  r.pod(&xcrs, "vCPU XCRs");
  r.pod(&debug, "vCPU debug registers");
  r.pod(&lapic, "vCPU local APIC");
  uint32_t count = r.count("vCPU MSR count", 4 + sizeof(kvm_msr_entry));
  std::vector<kvm_msr_entry> msrs(count);
  for (auto& m : msrs) r.pod(&m, "vCPU MSR");
  r.pod(&events, "vCPU events");
  uint32_t tsc_khz = r.u32("vCPU TSC frequency");
  HUSK_TRY(r.status());
  // KVM reads as many XSAVE bytes as this host's CPU state takes: a blob of another size came
  // from another CPU (and a shorter one would be read past).
  if (xsave.size() != kvm.xsave_size())
    return make_error(ErrorCode::kFailedPrecondition, "the snapshot's XSAVE state is %zu bytes, this host's is %zu: restore it on the host that wrote it",
                      xsave.size(), kvm.xsave_size());
  if (tsc_khz != 0 && vcpu.tsc_khz() != 0 && tsc_khz != vcpu.tsc_khz())
    return make_error(ErrorCode::kFailedPrecondition,
                      "the snapshot's vCPUs ran with a %u kHz TSC, this host's run at %u kHz: restore it on the host that "
                      "wrote it",
                      tsc_khz, vcpu.tsc_khz());
  HUSK_TRY(vcpu.set_mp_state(mp));
  HUSK_TRY(vcpu.set_regs(regs));
  HUSK_TRY(vcpu.set_sregs(sregs));
  HUSK_TRY(vcpu.set_xsave(xsave));
  HUSK_TRY(vcpu.set_xcrs(xcrs));
  HUSK_TRY(vcpu.set_debugregs(debug));
  HUSK_TRY(vcpu.set_lapic(lapic));
  auto n = vcpu.set_msrs(msrs);
  if (!n) return n.error();
  if (static_cast<size_t>(*n) != msrs.size())
    return make_error("KVM_SET_MSRS refused MSR 0x%x on vCPU %u", msrs[static_cast<size_t>(*n)].index, vcpu.id());
  return vcpu.set_vcpu_events(events);
}

}  // namespace husk::x86
