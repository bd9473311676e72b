#include "shim/config.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace husk::shim {

Result<Config> load_config(const std::string& given) {
  std::string path = given;
  bool required = !path.empty();
  if (path.empty()) {
    const char* env = std::getenv("HUSK_SHIM_CONFIG");
    path = env && *env ? env : "/etc/husk/shim.json";
    required = env && *env;
  }
  Config c;
  std::ifstream f(path);
  if (!f) {
    if (required) return make_error("shim config %s: cannot open", path.c_str());
    return c;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    auto j = nlohmann::json::parse(ss.str());
    auto str = [&](const char* k, std::string* v) {
      if (j.contains(k)) *v = j.at(k).get<std::string>();
    };
    auto num = [&](const char* k, unsigned* v) {
      if (j.contains(k)) *v = j.at(k).get<unsigned>();
    };
    str("mode", &c.mode);
    str("vmm", &c.vmm);
    str("kernel", &c.kernel);
    str("initramfs", &c.initramfs);
    str("virtiofsd", &c.virtiofsd);
    str("agent", &c.agent);
    str("log_level", &c.log_level);
    num("vcpus", &c.vcpus);
    num("memory_mib", &c.memory_mib);
    num("agent_timeout_ms", &c.agent_timeout_ms);
  } catch (const nlohmann::json::exception& e) {
    return make_error("shim config %s: %s", path.c_str(), e.what());
  }
  if (c.mode != "vm" && c.mode != "host") return make_error("shim config %s: mode must be \"vm\" or \"host\"", path.c_str());
  if (c.vcpus == 0 || c.vcpus > 64) return make_error("shim config %s: vcpus must be 1-64", path.c_str());
  if (c.memory_mib < 64) return make_error("shim config %s: memory_mib must be at least 64", path.c_str());
  return c;
}

}  // namespace husk::shim
