// husk: the operator's command. `husk check [--json] [--config FILE] [--root DIR]`.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/check.h"

int main(int argc, char** argv) {
  CLI::App app{"husk: operator commands for the husk microVM runtime", "husk"};
  app.require_subcommand(1);
  husk::check::Host host;
  bool json = false;
  auto* check = app.add_subcommand("check", "Is this host ready for husk, and how securely is it set up? "
                                            "Exit status 1 when something required fails");
  check->add_flag("--json", json, "One JSON array for machines");
  check->add_option("--config", host.shim_config, "The shim config to audit (default /etc/husk/shim.json)");
  check->add_option("--root", host.root, "Read the host under this directory (tests)")->group("");
  CLI11_PARSE(app, argc, argv);
  auto findings = husk::check::run(host);
  if (json)
    std::printf("%s\n", husk::check::to_json(findings).dump(2).c_str());
  else
    std::fputs(husk::check::to_text(findings).c_str(), stdout);
  return husk::check::exit_status(findings);
}
