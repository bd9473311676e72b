// husk-vmm entry point: parse, build the VM, run it, map the outcome to an exit status.
#include <csignal>
#include <cstdio>

#include "common/log.h"
#include "vmm/vm/config.h"
#include "vmm/vm/microvm.h"
#include "vmm/vm/snapshot_load.h"
#include "vmm/vm/timing.h"

int main(int argc, char** argv) {
  husk::timing::init();
  // A closed console reader must not kill the VM: writes then fail with EPIPE and are dropped.
  std::signal(SIGPIPE, SIG_IGN);
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

  if (cfg->await_load) return husk::run_after_snapshot_load(*cfg);
  auto vm = husk::MicroVm::build(*cfg);
  if (!vm) {
    LOG_ERROR("%s", vm.error().message.c_str());
    return 1;
  }
  return (*vm)->run();
}
