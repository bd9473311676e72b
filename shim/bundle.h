// An OCI bundle as the shim reads it, once: config.json's text (handed to the agent as is) and
// the few facts the shim itself acts on. `start` (which shim serves the container) and Create
// (how to attach its root, how big its VM is) both read it through here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"

namespace husk::shim {

struct Bundle {
  std::string path;
  std::string config_json;  // for the agent
  nlohmann::json spec;      // parsed: VM sizing reads annotations and limits
  std::string sandbox_id;   // io.kubernetes.cri.sandbox-id, "" when the container is its own sandbox
  std::string root_path;    // root.path, made absolute (relative to the bundle), checked for ".."
  bool root_readonly = false;
};

Result<Bundle> load_bundle(const std::string& path);

}  // namespace husk::shim
