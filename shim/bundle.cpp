#include "shim/bundle.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "shim/rootfs.h"

namespace husk::shim {

Result<Bundle> load_bundle(const std::string& path) {
  Bundle b;
  b.path = path;
  bool pod_sandbox = false, network_entry = false;
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
      if (auto it = ann->find("io.kubernetes.cri.container-type"); it != ann->end() && *it == "sandbox") pod_sandbox = true;
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
        for (const auto& n : *ns) {
          if (!n.is_object() || n.value("type", "") != "network") continue;
          network_entry = true;
          if (!n.contains("path")) continue;
          b.netns_path = n.at("path").get<std::string>();
          if (b.netns_path.empty() || b.netns_path[0] != '/')
            return make_error(ErrorCode::kInvalidArgument, "config.json: network namespace path \"%s\" is not absolute",
                              b.netns_path.c_str());
        }
      }
    }
    b.host_network = pod_sandbox && !network_entry;
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::kInvalidArgument, "config.json: %s", e.what());
  }
  return b;
}

std::vector<MountPoint> mountpoints_of(const Bundle& b) {
  std::vector<MountPoint> out;
  auto mounts = b.spec.find("mounts");
  if (mounts == b.spec.end() || !mounts->is_array()) return out;
  for (const auto& m : *mounts) {
    if (!m.is_object() || !m.contains("destination") || !m.at("destination").is_string()) continue;
    std::string dest = m.at("destination").get<std::string>();
    while (!dest.empty() && dest[0] == '/') dest.erase(0, 1);
    if (dest.empty()) continue;
    bool directory = true;
    if (m.value("type", "") == "bind" && m.contains("source") && m.at("source").is_string()) {
      struct stat st;
      std::string src = m.at("source").get<std::string>();
      directory = !(::stat(src.c_str(), &st) == 0 && !S_ISDIR(st.st_mode));
    }
    out.push_back({dest, directory});
  }
  return out;
}

Result<std::string> config_for_guest(const Bundle& b, const std::function<Result<std::string>(const std::string& source, bool ro)>& share) {
  nlohmann::json spec = b.spec;
  if (!b.netns_path.empty()) {
    auto& ns = spec["linux"]["namespaces"];
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& n : ns)
      if (!(n.is_object() && n.value("type", "") == "network")) kept.push_back(n);
    ns = std::move(kept);
  }
  if (auto mounts = spec.find("mounts"); mounts != spec.end() && mounts->is_array()) {
    try {
      for (auto& m : *mounts) {
        if (!m.is_object()) continue;
        std::vector<std::string> opts;
        if (m.contains("options") && m.at("options").is_array()) opts = m.at("options").get<std::vector<std::string>>();
        auto has = [&](const char* o) { return std::find(opts.begin(), opts.end(), o) != opts.end(); };
        bool bind = m.value("type", "") == "bind" || has("bind") || has("rbind");
        std::string source = m.value("source", "");
        if (!bind || source.empty() || source[0] != '/') continue;
        if (m.value("destination", "") == "/dev/shm") {
          m = {{"destination", "/dev/shm"}, {"type", "tmpfs"}, {"source", "shm"},
               {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}};
          continue;
        }
        auto guest = share(source, has("ro"));
        if (!guest) return guest.error();
        m["source"] = *guest;
      }
    } catch (const nlohmann::json::exception& e) {
      return make_error(ErrorCode::kInvalidArgument, "config.json mounts: %s", e.what());
    }
  }
  return spec.dump();
}

}  // namespace husk::shim
