// linux.seccomp → a classic BPF program, built with libseccomp in the agent before fork so the
// container's child only has to hand the program to the kernel.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "common/result.h"
#include "guest-agent/oci/spec.h"

namespace husk::agent::oci {

struct SeccompProgram {
  std::vector<sock_filter> filter;
  unsigned flags = 0;  // SECCOMP_FILTER_FLAG_*
};

Result<SeccompProgram> compile_seccomp(const Seccomp& profile);

// In the child: installs the program (async-signal-safe). Returns 0 or -errno.
int install_seccomp(const SeccompProgram& program);

}  // namespace husk::agent::oci
