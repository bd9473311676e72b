#include "shim/config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "github.com/containerd/containerd/pkg/runtimeoptions/v1/api.pb.h"

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
    static const char* known[] = {"mode", "vmm", "kernel", "initramfs", "virtiofsd", "agent", "log_level",
                                  "vcpus", "memory_mib", "agent_timeout_ms", "state_dir", "console",
                                  "console_limit", "max_vcpus", "max_memory_mib", "jail", "jailer", "jail_uid_min",
                                  "jail_uid_count", "jail_memory_overhead_mib", "vmm_seccomp", "vmm_args", "start",
                                  "template_dir", "virtiofs_cache"};
    for (const auto& [k, v] : j.items())
      if (std::find(std::begin(known), std::end(known), k) == std::end(known))
        return make_error("shim config %s: unknown field \"%s\"", path.c_str(), k.c_str());
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
    str("virtiofs_cache", &c.virtiofs_cache);
    str("agent", &c.agent);
    str("log_level", &c.log_level);
    str("state_dir", &c.state_dir);
    num("vcpus", &c.vcpus);
    num("memory_mib", &c.memory_mib);
    num("agent_timeout_ms", &c.agent_timeout_ms);
    str("console", &c.console);
    if (j.contains("console_limit")) c.console_limit = j.at("console_limit").get<uint64_t>();
    num("max_vcpus", &c.max_vcpus);
    num("max_memory_mib", &c.max_memory_mib);
    if (j.contains("jail")) c.jail = j.at("jail").get<bool>();
    str("jailer", &c.jailer);
    num("jail_uid_min", &c.jail_uid_min);
    num("jail_uid_count", &c.jail_uid_count);
    num("jail_memory_overhead_mib", &c.jail_memory_overhead_mib);
    str("vmm_seccomp", &c.vmm_seccomp);
    if (j.contains("vmm_args")) c.vmm_args = j.at("vmm_args").get<std::vector<std::string>>();
    str("start", &c.start);
    str("template_dir", &c.template_dir);
  } catch (const nlohmann::json::exception& e) {
    return make_error("shim config %s: %s", path.c_str(), e.what());
  }
  if (c.mode != "vm" && c.mode != "host") return make_error("shim config %s: mode must be \"vm\" or \"host\"", path.c_str());
  if (c.state_dir.empty() || c.state_dir[0] != '/' || c.state_dir.size() > 60)
    return make_error("shim config %s: state_dir must be an absolute path of at most 60 characters (sockets live under it)", path.c_str());
  if (c.start != "boot" && c.start != "template")
    return make_error("shim config %s: start must be \"boot\" or \"template\"", path.c_str());
  if (!c.template_dir.empty() && c.template_dir[0] != '/')
    return make_error("shim config %s: template_dir must be an absolute path", path.c_str());
  if (c.virtiofs_cache != "auto" && c.virtiofs_cache != "none" && c.virtiofs_cache != "always")
    return make_error("shim config %s: virtiofs_cache must be \"auto\", \"none\" or \"always\"", path.c_str());
  if (c.console != "file" && c.console != "off") return make_error("shim config %s: console must be \"file\" or \"off\"", path.c_str());
  if (c.vmm_seccomp != "kill" && c.vmm_seccomp != "log" && c.vmm_seccomp != "off")
    return make_error("shim config %s: vmm_seccomp must be \"kill\", \"log\" or \"off\"", path.c_str());
  if (c.jail_uid_min < 1000 || c.jail_uid_count == 0 || uint64_t{c.jail_uid_min} + c.jail_uid_count > 0xfffffffeull)
    return make_error("shim config %s: jail_uid_min must be at least 1000 and the range must fit below 2^32-1", path.c_str());
  if (c.console_limit < 4096) return make_error("shim config %s: console_limit must be at least 4096 bytes", path.c_str());
  if (c.max_vcpus == 0) c.max_vcpus = static_cast<unsigned>(std::clamp<long>(sysconf(_SC_NPROCESSORS_ONLN), 1, 64));
  if (c.max_memory_mib == 0)
    c.max_memory_mib = static_cast<unsigned>(std::max<uint64_t>(64, static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                                                                       static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) >> 20));
  if (c.vcpus == 0 || c.vcpus > 64) return make_error("shim config %s: vcpus must be 1-64", path.c_str());
  if (c.memory_mib < 64) return make_error("shim config %s: memory_mib must be at least 64", path.c_str());
  if (c.max_vcpus > 64 || c.vcpus > c.max_vcpus)
    return make_error("shim config %s: vcpus (%u) must be at most max_vcpus (%u, at most 64)", path.c_str(), c.vcpus, c.max_vcpus);
  if (c.memory_mib > c.max_memory_mib)
    return make_error("shim config %s: memory_mib (%u) must be at most max_memory_mib (%u)", path.c_str(), c.memory_mib, c.max_memory_mib);
  return c;
}

Result<std::string> config_path_from(const google::protobuf::Any& options) {
  if (options.type_url().empty()) return std::string();
  if (options.type_url() != "runtimeoptions.v1.Options" && options.type_url() != "type.googleapis.com/runtimeoptions.v1.Options")
    return std::string();
  runtimeoptions::v1::Options o;
  if (!o.ParseFromString(options.value())) return make_error("runtime options (runtimeoptions.v1.Options) do not parse");
  return o.config_path();
}

namespace {

// An annotation holding an unsigned number; absent → 0.
Result<uint64_t> number(const nlohmann::json& ann, const char* key) {
  if (!ann.is_object() || !ann.contains(key)) return uint64_t{0};
  const auto& v = ann.at(key);
  if (!v.is_string()) return make_error("annotation %s must be a string", key);
  const std::string& s = v.get_ref<const std::string&>();
  uint64_t n = 0;
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
    return make_error("annotation %s=\"%s\" is not a number", key, s.c_str());
  n = std::stoull(s);
  return n;
}

// A JSON number at spec.linux.resources.<a>.<b>; absent or not positive → 0.
uint64_t resource(const nlohmann::json& spec, const char* a, const char* b) {
  const nlohmann::json* r = &spec;
  for (const char* k : {"linux", "resources", a, b}) {
    if (!r->is_object() || !r->contains(k)) return 0;
    r = &r->at(k);
  }
  if (r->is_number_unsigned()) return r->get<uint64_t>();
  if (r->is_number_integer() && r->get<int64_t>() > 0) return static_cast<uint64_t>(r->get<int64_t>());
  return 0;
}

}  // namespace

Result<Config> size_for(Config c, const nlohmann::json& spec) {
  const nlohmann::json& ann = spec.is_object() && spec.contains("annotations") ? spec.at("annotations") : nlohmann::json();
  auto vcpus = number(ann, kVcpusAnnotation);
  auto mem = number(ann, kMemoryAnnotation);
  auto pod_quota = number(ann, "io.kubernetes.cri.sandbox-cpu-quota");
  auto pod_period = number(ann, "io.kubernetes.cri.sandbox-cpu-period");
  auto pod_mem = number(ann, "io.kubernetes.cri.sandbox-memory");
  for (const auto* r : {&vcpus, &mem, &pod_quota, &pod_period, &pod_mem})
    if (!*r) return r->error();
  uint64_t quota = *pod_quota ? *pod_quota : resource(spec, "cpu", "quota");
  uint64_t period = *pod_quota ? *pod_period : resource(spec, "cpu", "period");
  uint64_t limit = *pod_mem ? *pod_mem : resource(spec, "memory", "limit");
  // Config files are checked by load_config; a Config built in code may leave the maxima at 0.
  const uint64_t max_vcpus = c.max_vcpus ? c.max_vcpus : 64;
  const uint64_t max_mib = c.max_memory_mib ? c.max_memory_mib : uint64_t{1} << 20;
  if (*vcpus) {
    if (*vcpus > max_vcpus)
      return make_error(ErrorCode::kInvalidArgument, "annotation %s=%llu: more than max_vcpus (%llu) in the shim config",
                        kVcpusAnnotation, static_cast<unsigned long long>(*vcpus), static_cast<unsigned long long>(max_vcpus));
    c.vcpus = static_cast<unsigned>(*vcpus);
  } else if (quota > 0) {
    if (period == 0) period = 100000;  // the kernel's default CFS period
    c.vcpus = static_cast<unsigned>(std::clamp<uint64_t>((quota + period - 1) / period, c.vcpus, std::max<uint64_t>(c.vcpus, max_vcpus)));
  }
  if (*mem) {
    if (*mem < 64 || *mem > max_mib)
      return make_error(ErrorCode::kInvalidArgument, "annotation %s=%llu: must be 64 MiB to max_memory_mib (%llu) in the shim config",
                        kMemoryAnnotation, static_cast<unsigned long long>(*mem), static_cast<unsigned long long>(max_mib));
    c.memory_mib = static_cast<unsigned>(*mem);
  } else if (limit > 0) {
    uint64_t want = c.memory_mib + std::min<uint64_t>((limit + (1 << 20) - 1) >> 20, max_mib);
    c.memory_mib = static_cast<unsigned>(std::min(want, std::max<uint64_t>(c.memory_mib, max_mib)));
  }
  // A cgroupfs path (not systemd's "slice:prefix:name"), without . or .. components.
  if (spec.is_object() && spec.contains("linux") && spec.at("linux").is_object() && spec.at("linux").contains("cgroupsPath") &&
      spec.at("linux").at("cgroupsPath").is_string()) {
    std::string p = spec.at("linux").at("cgroupsPath").get<std::string>();
    bool ok = p.size() > 1 && p.size() < 512 && p[0] == '/' && p.find(':') == std::string::npos;
    for (size_t i = 0; ok && i < p.size();) {
      size_t j = p.find('/', i + 1);
      std::string part = p.substr(i + 1, j == std::string::npos ? std::string::npos : j - i - 1);
      ok = !part.empty() && part != "." && part != "..";
      i = j == std::string::npos ? p.size() : j;
    }
    if (ok) c.cgroup_path = p;
  }
  return c;
}

}  // namespace husk::shim
