// Runs a shell script where a guest can boot (tests/testhost/run.sh decides: hardware KVM
// directly, or the QEMU TCG test host) and returns what it printed and its exit status.
#pragma once

#include <string>

namespace husk::testhost {

struct Run {
  int exit_code = -1;
  std::string output;
  // The value printed as `KEY=value` on a line of its own, or "" when absent.
  std::string value(const std::string& key) const;
};

// `script` is POSIX sh; it sees $HUSK_VMM, $HUSK_KERNEL, $HUSK_INITRD and $HUSK_ROOT.
Run run(const std::string& script, const std::string& run_args = "");

}  // namespace husk::testhost
