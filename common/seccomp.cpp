#include "common/seccomp.h"

#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/unique_fd.h"

namespace husk::seccomp {

Rule ioctl_rule(unsigned long request, const char* why) {
  return Rule{SCMP_SYS(ioctl), {Arg{1, SCMP_CMP_EQ, request}}, why};
}

std::vector<Rule> join(std::initializer_list<const std::vector<Rule>*> lists) {
  std::vector<Rule> out;
  for (const auto* l : lists) out.insert(out.end(), l->begin(), l->end());
  return out;
}

namespace {

using Ctx = std::unique_ptr<void, void (*)(scmp_filter_ctx)>;

Status add_rules(scmp_filter_ctx ctx, const std::vector<Rule>& rules, uint32_t action) {
  for (const Rule& r : rules) {
    std::vector<scmp_arg_cmp> cmps;
    for (const Arg& a : r.args)
      cmps.push_back(a.op == SCMP_CMP_MASKED_EQ ? scmp_arg_cmp{a.index, a.op, a.mask, a.value}
                                                : scmp_arg_cmp{a.index, a.op, a.value, 0});
    int rc = seccomp_rule_add_array(ctx, action, r.nr, static_cast<unsigned>(cmps.size()), cmps.empty() ? nullptr : cmps.data());
    if (rc != 0) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, r.nr);
      Error e = make_error("seccomp rule for %s: %s", name ? name : "?", strerror(-rc));
      free(name);  // NOLINT: libseccomp allocates it with malloc
      return e;
    }
  }
  return {};
}

}  // namespace

Result<Program> export_bpf(void* ctx) {
  Program p;
  // libseccomp writes BPF to an fd (its in-memory export is newer than Debian's 2.5): a memfd.
  UniqueFd mem(static_cast<int>(::syscall(SYS_memfd_create, "husk-seccomp", MFD_CLOEXEC)));
  if (!mem) return make_error("memfd_create: %s", strerror(errno));
  if (int rc = seccomp_export_bpf(ctx, mem.get()); rc != 0)
    return make_error("seccomp_export_bpf: %s", strerror(-rc));
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0) return make_error("seccomp: bad BPF export");
  p.code_.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  if (::pread(mem.get(), p.code_.data(), static_cast<size_t>(size), 0) != size)
    return make_error("seccomp: reading the BPF export: %s", strerror(errno));
  return p;
}

Result<Program> compile(const std::vector<Rule>& rules, Mode mode) {
  if (mode == Mode::kOff) return Program{};
  Ctx ctx(seccomp_init(mode == Mode::kKill ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_LOG), seccomp_release);
  if (!ctx) return make_error("seccomp_init failed");
  HUSK_TRY(add_rules(ctx.get(), rules, SCMP_ACT_ALLOW));
  return export_bpf(ctx.get());
}

Result<Program> compile_denylist(const std::vector<Rule>& denied, int err) {
  Ctx ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  if (!ctx) return make_error("seccomp_init failed");
  HUSK_TRY(add_rules(ctx.get(), denied, SCMP_ACT_ERRNO(static_cast<uint32_t>(err))));
  return export_bpf(ctx.get());
}

Status Program::install() const {
  if (code_.empty()) return {};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return make_error("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
  sock_fprog prog{static_cast<unsigned short>(code_.size()), const_cast<sock_filter*>(code_.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
    return make_error("installing the seccomp filter: %s", strerror(errno));
  return {};
}

}  // namespace husk::seccomp
