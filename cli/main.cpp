// husk: the operator's command.
//   husk check [--json] [--config FILE] [--root DIR]
//   husk template create|list|prune [--config FILE]
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/check.h"
#include "common/log.h"
#include "shim/config.h"
#include "shim/sandbox.h"
#include "shim/templates.h"

namespace {

int fail(const husk::Error& e) {
  std::fprintf(stderr, "husk: %s\n", e.message.c_str());
  return 1;
}

// The templates a "start": "template" sandbox of this config restores (shim/templates.h).
int template_command(const std::string& what, const std::string& config_path, unsigned nics) {
  using namespace husk::shim;
  auto c = load_config(config_path);
  if (!c) return fail(c.error());
  if (what == "create") {
    // As the first template sandbox would: a jailed VM booted, paused once its agent answers,
    // snapshotted into the template directory.
    auto created = create_template(*c, nics);
    if (!created) return fail(created.error());
    auto inputs = template_inputs(*c, nics);
    std::printf("template %s/%s %s\n", template_root(*c).c_str(), husk::shim::short_hash(inputs.value()).c_str(),
                *created ? "created" : "exists");
    return 0;
  }
  if (what == "list") {
    auto list = list_templates(*c);
    if (!list) return fail(list.error());
    for (const auto& t : *list) {
      const char* kind = t.kind == TemplateEntry::kCurrent ? "current" : t.kind == TemplateEntry::kStale ? "stale" : "partial";
      std::printf("%s %-8s %8.1f MiB on disk\n", t.key.c_str(), kind, static_cast<double>(t.disk_bytes) / (1 << 20));
    }
    return 0;
  }
  auto removed = prune_templates(*c);
  if (!removed) return fail(removed.error());
  for (const auto& k : *removed) std::printf("removed %s\n", k.c_str());
  return 0;
}

}  // namespace

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

  std::string tmpl_config, tmpl_what;
  auto* tmpl = app.add_subcommand("template", "Sandbox templates (\"start\": \"template\" in the shim config)");
  tmpl->add_option("action", tmpl_what,
                   "create: make the template for this config now (instead of the first sandbox); list: the templates "
                   "and which one this config uses; prune: remove the others")
      ->required()
      ->check(CLI::IsMember({"create", "list", "prune"}));
  tmpl->add_option("--config", tmpl_config, "The shim config (default $HUSK_SHIM_CONFIG or /etc/husk/shim.json)");
  unsigned nics = 0;
  tmpl->add_option("--nics", nics, "create: for sandboxes with this many pod interfaces (CRI pods: 1)")
      ->check(CLI::Range(0u, husk::shim::kMaxTemplateNics));
  CLI11_PARSE(app, argc, argv);
  if (tmpl->parsed()) return template_command(tmpl_what, tmpl_config, nics);
  auto findings = husk::check::run(host);
  if (json)
    std::printf("%s\n", husk::check::to_json(findings).dump(2).c_str());
  else
    std::fputs(husk::check::to_text(findings).c_str(), stdout);
  return husk::check::exit_status(findings);
}
