#include "guest-agent/oci/seccomp.h"

#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "common/unique_fd.h"

namespace husk::agent::oci {
namespace {

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

}  // namespace

Result<SeccompProgram> compile_seccomp(const Seccomp& profile) {
  Ctx ctx(seccomp_init(profile.default_action));
  if (!ctx) return make_error("seccomp: libseccomp rejected the default action");
  // Exporting only: no_new_privs is the launcher's decision (process.noNewPrivileges).
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
  for (uint32_t arch : profile.architectures) {
    int rc = seccomp_arch_add(ctx.get(), arch);
    if (rc != 0 && rc != -EEXIST) return make_error("seccomp: adding architecture %#x: %s", arch, strerror(-rc));
  }
  for (const auto& rule : profile.syscalls) {
    // The kernel's default already covers a rule with the same action; libseccomp refuses it.
    if (rule.action == profile.default_action) continue;
    std::vector<scmp_arg_cmp> conds;
    std::set<unsigned> indexes;
    bool repeated_index = false;
    for (const auto& a : rule.args) {
      conds.push_back(scmp_arg_cmp{a.index, static_cast<scmp_compare>(a.op), a.value, a.value_two});
      repeated_index |= !indexes.insert(a.index).second;
    }
    for (const auto& name : rule.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      // Profiles list system calls of every kernel and architecture; unknown ones do not apply.
      if (nr == __NR_SCMP_ERROR) continue;
      int rc = 0;
      if (repeated_index) {
        // Several conditions on one argument mean "any of them" (runc's reading): one rule each.
        for (const auto& c : conds) {
          rc = seccomp_rule_add_array(ctx.get(), rule.action, nr, 1, &c);
          if (rc != 0) break;
        }
      } else {
        rc = seccomp_rule_add_array(ctx.get(), rule.action, nr, static_cast<unsigned>(conds.size()),
                                    conds.empty() ? nullptr : conds.data());
      }
      if (rc != 0) return make_error("seccomp: rule for %s: %s", name.c_str(), strerror(-rc));
    }
  }
  UniqueFd mem(memfd_create("husk-seccomp", MFD_CLOEXEC));
  if (!mem) return make_error("seccomp: memfd_create: %s", strerror(errno));
  if (int rc = seccomp_export_bpf(ctx.get(), mem.get()); rc != 0)
    return make_error("seccomp: exporting the filter: %s", strerror(-rc));
  off_t size = lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) return make_error("seccomp: exported filter has a bad size %lld", static_cast<long long>(size));
  if (static_cast<size_t>(size) / sizeof(sock_filter) > BPF_MAXINSNS)
    return make_error("seccomp: the filter has %zu instructions, more than the kernel's %d",
                      static_cast<size_t>(size) / sizeof(sock_filter), BPF_MAXINSNS);
  SeccompProgram prog;
  prog.filter.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  if (pread(mem.get(), prog.filter.data(), static_cast<size_t>(size), 0) != size)
    return make_error("seccomp: reading the exported filter back failed");
  if (profile.log_flag) prog.flags |= SECCOMP_FILTER_FLAG_LOG;
  return prog;
}

int install_seccomp(const SeccompProgram& program) {
  sock_fprog fprog{static_cast<unsigned short>(program.filter.size()),
                   const_cast<sock_filter*>(program.filter.data())};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, program.flags, &fprog) != 0) return -errno;
  return 0;
}

}  // namespace husk::agent::oci
