// Runs the same OCI bundle under runc and under husk-agent (host mode, through husk-agentctl)
// and returns what each container printed, for side-by-side comparison.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace husk::conformance {

struct Out {
  int code = -1;
  std::string out;  // stdout (terminal output with \r removed)
  std::string err;
};

// Shell command with stdout and stderr captured.
Out sh(const std::string& cmd);

// A bundle directory whose config.json is the test bundle's, with `args` and `edit` applied;
// root.path points at the shared busybox root filesystem.
struct Bundle {
  std::string dir;
  nlohmann::json config;
};
Bundle make_bundle(const std::string& name, const std::string& script,
                   const std::function<void(nlohmann::json&)>& edit = {});

// Foreground run, the container's exit status as the runtime's.
Out runc_run(const Bundle& b, const std::string& id);
Out husk_run(const Bundle& b, const std::string& id);

std::string runc();
std::string runc_run_cmd();  // "runc run [flags this machine needs]"
std::string agentctl();  // "husk-agentctl --address ..." ready for arguments
std::string scratch_dir();

}  // namespace husk::conformance
