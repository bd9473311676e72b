// husk-jailer entry point: parse the jail's description, then jailer::run (jail.h).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "jailer/jail.h"

namespace {

// "name=value" for --rlimit into the spec; false for an unknown name or a bad number.
bool set_limit(husk::jailer::Rlimits& l, const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos) return false;
  std::string name = text.substr(0, eq);
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str() + eq + 1, &end, 10);
  if (text.substr(eq + 1) == "unlimited") v = RLIM_INFINITY;
  else if (eq + 1 == text.size() || *end) return false;
  if (name == "nofile") l.nofile = v;
  else if (name == "fsize") l.fsize = v;
  else if (name == "nproc") l.nproc = v;
  else if (name == "core") l.core = v;
  else return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  husk::jailer::Spec s;
  CLI::App app{"husk-jailer: start a sandbox's host helper (husk-vmm, virtiofsd) confined: cgroup, namespaces, "
               "a private read-only root, rlimits, no fds or environment of ours, an unprivileged uid with no "
               "capabilities",
               "husk-jailer"};
  std::optional<uint32_t> uid, gid;
  app.add_option("--uid", uid, "Run as this uid (not 0); without it the helper stays root");
  app.add_option("--gid", gid, "... and this gid (not 0); no supplementary groups");
  app.add_option("--root", s.root, "Directory to mount the jail's private tmpfs root on (then pivot_root)");
  std::vector<std::string> binds;
  app.add_option("--bind", binds, "SRC:DEST: host file SRC read-only at DEST in the jail (repeatable)");
  app.add_option("--dev", s.devices, "Device node to recreate in the jail: /dev/kvm, /dev/net/tun, /dev/urandom");
  app.add_option("--cgroup", s.cgroup, "cgroup v2 directory to join before anything else");
  std::string netns = "new";
  app.add_option("--netns", netns, "new (an empty network namespace), host, or a namespace path to join");
  bool no_new_pid = false;
  app.add_flag("--no-new-pid", no_new_pid, "Stay in the host's pid namespace (helpers that make their own)");
  app.add_option("--fds", s.keep_fds, "Hand descriptors 3 .. 3+N-1 to the helper; every other one is closed");
  app.add_option("--env", s.env, "NAME=VALUE: the helper's whole environment (repeatable; default empty)");
  std::vector<std::string> pass_env;
  app.add_option("--pass-env", pass_env, "NAME: copy this variable from the jailer's environment, if set (benchmarks' clocks)");
  std::vector<std::string> limits;
  app.add_option("--rlimit", limits, "nofile=N, fsize=BYTES, nproc=N, core=BYTES, or NAME=unlimited (defaults 1024, 64 MiB, 64, 0)");
  // Everything from the helper's path on is the helper's: -- HELPER [ARGS...].
  app.prefix_command();
  app.footer("usage: husk-jailer [OPTIONS] -- HELPER [ARGS...]");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::vector<std::string> command = app.remaining();
  if (!command.empty() && command[0] == "--") command.erase(command.begin());
  if (command.empty()) {
    std::fprintf(stderr, "husk-jailer: no helper to run (-- HELPER [ARGS...])\n");
    return 2;
  }
  for (const auto& b : binds) {
    auto colon = b.find(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "husk-jailer: --bind %s: SRC:DEST\n", b.c_str());
      return 2;
    }
    s.binds.push_back({b.substr(0, colon), b.substr(colon + 1)});
  }
  for (const auto& l : limits)
    if (!set_limit(s.limits, l)) {
      std::fprintf(stderr, "husk-jailer: --rlimit %s: nofile=, fsize=, nproc= or core= and a number\n", l.c_str());
      return 2;
    }
  for (const auto& name : pass_env)
    if (const char* v = std::getenv(name.c_str())) s.env.push_back(name + "=" + v);
  if (uid) s.uid = *uid;
  if (gid) s.gid = *gid;
  s.netns = netns == "new" ? "" : netns;
  s.new_pid = !no_new_pid;
  s.exec = command[0];
  s.argv = command;
  s.argv[0] = command[0].substr(command[0].rfind('/') + 1);
  auto r = husk::jailer::run(s);
  if (!r) {
    std::fprintf(stderr, "husk-jailer: %s\n", r.error().message.c_str());
    return 125;  // the jail failed, not the helper
  }
  return *r;
}
