// `husk check`: is this host ready for husk, and how securely is it set up? One finding per
// line with a verdict and, when not a pass, how to fix it (Kata's `kata-runtime check`,
// docker-bench-style). Every path is read under `Host::root`, so tests point it at a fake tree.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace husk::check {

enum class Verdict { kPass, kWarn, kFail };

struct Finding {
  std::string name;
  Verdict verdict;
  std::string detail;
  std::string fix;  // empty for a pass
};

struct Host {
  std::string root;         // "" for this host; a directory standing in for / in tests
  std::string shim_config;  // the shim's config file (default /etc/husk/shim.json)
};

std::vector<Finding> run(const Host& h);

// "PASS  name: detail" lines (with "      fix: ..." under a warning or failure).
std::string to_text(const std::vector<Finding>& findings);
nlohmann::json to_json(const std::vector<Finding>& findings);
// 1 when something required fails, else 0.
int exit_status(const std::vector<Finding>& findings);

}  // namespace husk::check
