#include "shim/bundle.h"

#include <fstream>
#include <sstream>

#include "shim/rootfs.h"

namespace husk::shim {

Result<Bundle> load_bundle(const std::string& path) {
  Bundle b;
  b.path = path;
  std::ifstream f(path + "/config.json");
  if (!f) return make_error(ErrorCode::kInvalidArgument, "bundle %s has no readable config.json", path.c_str());
  std::stringstream ss;
  ss << f.rdbuf();
  b.config_json = ss.str();
  try {
    b.spec = nlohmann::json::parse(b.config_json);
    if (!b.spec.is_object()) return make_error(ErrorCode::kInvalidArgument, "config.json: not a JSON object");
    if (auto ann = b.spec.find("annotations"); ann != b.spec.end() && ann->is_object()) {
      if (auto it = ann->find("io.kubernetes.cri.sandbox-id"); it != ann->end() && it->is_string())
        b.sandbox_id = it->get<std::string>();
    }
    if (auto root = b.spec.find("root"); root != b.spec.end()) {
      b.root_readonly = root->value("readonly", false);
      if (root->contains("path")) {
        auto p = checked_root_path(path, root->at("path").get<std::string>());
        if (!p) return p.error();
        b.root_path = *p;
      }
    }
    if (auto lx = b.spec.find("linux"); lx != b.spec.end() && lx->is_object()) {
      if (auto ns = lx->find("namespaces"); ns != lx->end() && ns->is_array()) {
        for (const auto& n : *ns)
          if (n.is_object() && n.value("type", "") == "network" && n.contains("path")) {
            b.netns_path = n.at("path").get<std::string>();
            if (b.netns_path.empty() || b.netns_path[0] != '/')
              return make_error(ErrorCode::kInvalidArgument, "config.json: network namespace path \"%s\" is not absolute",
                                b.netns_path.c_str());
          }
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, "config.json: %s", e.what());
  }
  return b;
}

std::string config_for_guest(const Bundle& b) {
  if (b.netns_path.empty()) return b.config_json;
  nlohmann::json spec = b.spec;
  auto& ns = spec["linux"]["namespaces"];
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& n : ns)
    if (!(n.is_object() && n.value("type", "") == "network")) kept.push_back(n);
  ns = std::move(kept);
  return spec.dump();
}

}  // namespace husk::shim
