// Seccomp allowlists, built with libseccomp and compiled to BPF once, so a thread installs its
// filter with one system call and no allocation (vCPU threads install theirs on start, before
// any guest code runs). Each thread kind's list lives in a file of its own, one line per system
// call saying why it is needed; this file only turns such a list into a filter.
#pragma once

#include <linux/filter.h>
#include <seccomp.h>

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "common/result.h"

namespace husk::seccomp {

// kKill: a call outside the list kills the whole process (SECCOMP_RET_KILL_PROCESS; a thread
// alone dying would leave a VM half-run). kLog: allowed but logged by the kernel (audit type
// 1326, in dmesg), for finding what a list misses. kOff: no filter.
enum class Mode { kKill, kLog, kOff };

// One condition on an argument: arg `index` compared with `op` (SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ
// with `mask`...) to `value`.
struct Arg {
  unsigned index;
  scmp_compare op;
  uint64_t value;
  uint64_t mask = 0;  // for SCMP_CMP_MASKED_EQ: (arg & mask) == value
};

// A system call allowed when all of `args` hold (always, when empty). Several rules for the
// same call are alternatives.
struct Rule {
  int nr;
  std::vector<Arg> args;
  const char* why;
};

// Helpers for the lists: ioctl(fd, request) for one request; socket(family, ...).
Rule ioctl_rule(unsigned long request, const char* why);

// A compiled filter: what SECCOMP_SET_MODE_FILTER takes.
class Program {
 public:
  Program() = default;
  bool empty() const { return code_.empty(); }
  size_t instructions() const { return code_.size(); }
  // Installs the filter on the calling thread only (no TSYNC: each thread kind has its own).
  // Sets no_new_privs first, as an unprivileged process must.
  Status install() const;

 private:
  friend Result<Program> compile(const std::vector<Rule>&, Mode);
  friend Result<Program> compile_denylist(const std::vector<Rule>&, int);
  friend Result<Program> export_bpf(void* ctx);
  std::vector<sock_filter> code_;
};

Result<Program> compile(const std::vector<Rule>& rules, Mode mode);

// The other way round, for a process whose needs are wide (the shim, and through exec every
// helper it starts): everything is allowed but `denied`, which fails with `err`.
Result<Program> compile_denylist(const std::vector<Rule>& denied, int err);

// Concatenates lists (a thread kind's own rules plus rules shared by every kind).
std::vector<Rule> join(std::initializer_list<const std::vector<Rule>*> lists);

}  // namespace husk::seccomp
