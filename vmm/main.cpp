// husk-vmm entry point: parse, refuse what cannot work, build the VM, run it, map the outcome
// to an exit status.
#include <cstdio>
#include <exception>

#include "common/log.h"
#include "vmm/kvm/kvm.h"
#include "vmm/vm/config.h"
#include "vmm/vm/microvm.h"
#include "vmm/vm/timing.h"

int main(int argc, char** argv) {
  husk::timing::init();
  husk::log::set_program("husk-vmm");
  bool exit_ok = false;
  auto cfg = husk::parse_args(argc, argv, &exit_ok);
  if (!cfg) {
    if (exit_ok) {
      std::fputs(cfg.error().message.c_str(), stdout);
      return 0;
    }
    LOG_ERROR("%s", cfg.error().message.c_str());
    return 1;
  }
  husk::log::set_level(static_cast<husk::log::Level>(cfg->log_level));

  if (!cfg->kernel.empty() && husk::kvm::is_pvm() && !cfg->allow_pvm) {
    LOG_ERROR(
        "/dev/kvm on this host is PVM (module kvm_pvm): it cannot boot a stock Linux guest (it "
        "would run for seconds in KVM's instruction emulator and die). Boot guests inside the "
        "husk test host instead: tests/testhost/run.sh (see README), or pass --allow-pvm to try.");
    return 1;
  }
  try {
    husk::MicroVm vm(*cfg);
    return vm.run();
  } catch (const std::exception& e) {
    LOG_ERROR("%s", e.what());
    return 1;
  }
}
