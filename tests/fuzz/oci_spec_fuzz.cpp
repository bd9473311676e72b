// config.json, process and resources JSON arrive from the host over gRPC: any bytes must parse
// or fail with an error, never crash or hang the agent.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "guest-agent/oci/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = husk::agent::oci::parse_spec(text);
  if (spec) {
    // Whatever parsed must satisfy the invariants the launcher relies on.
    for (const auto& m : spec->mounts)
      if (!husk::agent::oci::check_container_path("m", m.destination)) __builtin_trap();
    if (spec->process.args.empty()) __builtin_trap();
    for (const auto& r : spec->process.rlimits)
      if (r.soft > r.hard) __builtin_trap();
  }
  (void)husk::agent::oci::parse_process(text);
  (void)husk::agent::oci::parse_resources(text);
  return 0;
}
