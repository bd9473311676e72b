// husk-agent against runc: each test runs one bundle under both and compares what the
// container observed. Needs root, runc, and cgroup v2 with the memory and pids controllers
// (tests/conformance/run.sh runs it in the test host when this machine lacks them).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/conformance/harness.h"

namespace husk::conformance {
namespace {

using json = nlohmann::json;

std::string both(const Out& runc, const Out& husk) {
  return "\n--- runc (exit " + std::to_string(runc.code) + ")\n" + runc.out + runc.err + "\n--- husk (exit " +
         std::to_string(husk.code) + ")\n" + husk.out + husk.err;
}

#define EXPECT_SAME(r, h)                                   \
  do {                                                      \
    EXPECT_EQ((r).code, (h).code) << both((r), (h));        \
    EXPECT_EQ((r).out, (h).out) << both((r), (h));          \
  } while (0)

TEST(Conformance, StdoutAndExitStatus) {
  auto b = make_bundle("exit", "echo out-line; echo err-line >&2; exit 3");
  auto r = runc_run(b, "c-exit-r");
  auto h = husk_run(b, "c-exit-h");
  EXPECT_EQ(r.out, "out-line\n") << both(r, h);
  EXPECT_EQ(r.code, 3);
  EXPECT_SAME(r, h);
  EXPECT_NE(h.err.find("err-line"), std::string::npos) << h.err;
}

TEST(Conformance, UserGroupsUmaskAndHome) {
  auto b = make_bundle("user", "id; grep Groups /proc/self/status; echo HOME=$HOME; umask; pwd",
                       [](json& c) {
                         c["process"]["user"] = {{"uid", 1000}, {"gid", 1000}, {"additionalGids", {10, 20}}, {"umask", 63}};
                         c["process"]["cwd"] = "/home/user";
                       });
  auto r = runc_run(b, "c-user-r");
  auto h = husk_run(b, "c-user-h");
  EXPECT_NE(r.out.find("uid=1000(user) gid=1000(user)"), std::string::npos) << both(r, h);
  EXPECT_SAME(r, h);
}

TEST(Conformance, DefaultCapabilities) {
  auto b = make_bundle("caps", "grep -E '^Cap' /proc/self/status");
  auto r = runc_run(b, "c-caps-r");
  auto h = husk_run(b, "c-caps-h");
  EXPECT_NE(r.out.find("CapBnd:\t0000000020000420"), std::string::npos) << both(r, h);
  EXPECT_SAME(r, h);
}

TEST(Conformance, AmbientAndInheritableCapabilitiesForNonRoot) {
  auto b = make_bundle("caps2", "grep -E '^Cap' /proc/self/status", [](json& c) {
    json set = {"CAP_NET_ADMIN", "CAP_SYS_TIME", "CAP_KILL"};
    c["process"]["user"] = {{"uid", 1000}, {"gid", 1000}};
    c["process"]["capabilities"] = {{"bounding", set}, {"effective", set}, {"permitted", set},
                                    {"inheritable", set}, {"ambient", set}};
  });
  auto r = runc_run(b, "c-caps2-r");
  auto h = husk_run(b, "c-caps2-h");
  EXPECT_NE(r.out.find("CapAmb:\t0000000002001020"), std::string::npos) << both(r, h);
  EXPECT_SAME(r, h);
}

TEST(Conformance, NoNewPrivileges) {
  for (bool nnp : {true, false}) {
    auto b = make_bundle(nnp ? "nnp1" : "nnp0", "grep NoNewPrivs /proc/self/status",
                         [nnp](json& c) { c["process"]["noNewPrivileges"] = nnp; });
    auto r = runc_run(b, nnp ? "c-nnp1-r" : "c-nnp0-r");
    auto h = husk_run(b, nnp ? "c-nnp1-h" : "c-nnp0-h");
    EXPECT_EQ(r.out, std::string("NoNewPrivs:\t") + (nnp ? "1" : "0") + "\n") << both(r, h);
    EXPECT_SAME(r, h);
  }
}

TEST(Conformance, SeccompDeniesWithErrno) {
  auto b = make_bundle("seccomp", "grep -E '^Seccomp:' /proc/self/status; mkdir /dev/shm/x; echo mkdir=$?; "
                                  "ls -d /dev/shm/x 2>&1; echo ok",
                       [](json& c) {
                         c["linux"]["seccomp"] = {
                             {"defaultAction", "SCMP_ACT_ALLOW"},
                             {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"}},
                             {"syscalls", {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 13}}}}};
                       });
  auto r = runc_run(b, "c-sec-r");
  auto h = husk_run(b, "c-sec-h");
  EXPECT_NE(r.out.find("Seccomp:\t2"), std::string::npos) << both(r, h);
  EXPECT_NE(r.out.find("mkdir=1"), std::string::npos) << both(r, h);
  EXPECT_SAME(r, h);
  EXPECT_NE(h.err.find("Permission denied"), std::string::npos) << h.err;  // errno 13 reached the program
}

TEST(Conformance, SeccompArgumentFilterWithoutNoNewPrivs) {
  // personality(0xffffffff) is a query; deny only personality(8) (PER_LINUX... with an argument match).
  auto b = make_bundle("seccomp2", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; echo hi",
                       [](json& c) {
                         c["process"]["noNewPrivileges"] = false;
                         c["linux"]["seccomp"] = {
                             {"defaultAction", "SCMP_ACT_ALLOW"},
                             {"syscalls", {{{"names", {"personality"}}, {"action", "SCMP_ACT_ERRNO"},
                                            {"args", {{{"index", 0}, {"value", 8}, {"op", "SCMP_CMP_EQ"}}}}}}}};
                       });
  auto r = runc_run(b, "c-sec2-r");
  auto h = husk_run(b, "c-sec2-h");
  EXPECT_NE(r.out.find("NoNewPrivs:\t0"), std::string::npos) << both(r, h);
  EXPECT_SAME(r, h);
}

TEST(Conformance, HostnameAndRlimits) {
  auto b = make_bundle("host", "hostname; ulimit -n; ulimit -Hn; ulimit -c", [](json& c) {
    c["hostname"] = "box-42";
    c["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 321}, {"hard", 654}},
                               {{"type", "RLIMIT_CORE"}, {"soft", 0}, {"hard", 0}}};
  });
  auto r = runc_run(b, "c-host-r");
  auto h = husk_run(b, "c-host-h");
  EXPECT_EQ(r.out, "box-42\n321\n654\n0\n") << both(r, h);
  EXPECT_SAME(r, h);
}

TEST(Conformance, ReadonlyRootfs) {
  for (bool ro : {true, false}) {
    auto b = make_bundle(ro ? "ro1" : "ro0", "touch /rootfs-probe 2>&1; echo touch=$?; rm -f /rootfs-probe",
                         [ro](json& c) { c["root"]["readonly"] = ro; });
    auto r = runc_run(b, ro ? "c-ro1-r" : "c-ro0-r");
    auto h = husk_run(b, ro ? "c-ro1-h" : "c-ro0-h");
    EXPECT_NE(r.out.find(ro ? "touch=1" : "touch=0"), std::string::npos) << both(r, h);
    EXPECT_SAME(r, h);
  }
}

TEST(Conformance, MaskedAndReadonlyPaths) {
  auto b = make_bundle("masked",
                       "wc -c </proc/timer_list; ls /sys/firmware | wc -l; cat /proc/keys | wc -c; "
                       "echo x >/proc/sys/kernel/hostname 2>/dev/null; echo write=$?; "
                       "awk '$2==\"/proc/sys\" || $2==\"/proc/timer_list\" || $2==\"/sys/firmware\" {split($4,o,\",\"); print $2, o[1]}' /proc/mounts");
  auto r = runc_run(b, "c-mask-r");
  auto h = husk_run(b, "c-mask-h");
  EXPECT_NE(r.out.find("0\n0\n0\nwrite=1\n"), std::string::npos) << both(r, h);
  EXPECT_SAME(r, h);
}

TEST(Conformance, Mounts) {
  // Mount points, types and read-only flags as the container sees them.
  auto b = make_bundle("mounts", "awk '{split($4,o,\",\"); print $2, $3, o[1]}' /proc/mounts | sort");
  auto r = runc_run(b, "c-mnt-r");
  auto h = husk_run(b, "c-mnt-h");
  EXPECT_NE(r.out.find("/dev/pts devpts rw"), std::string::npos) << both(r, h);
  EXPECT_SAME(r, h);
}

TEST(Conformance, Terminal) {
  auto b = make_bundle("tty", "[ -t 0 ] && [ -t 1 ] && echo both-tty; ls -l /dev/console | cut -c1; echo done",
                       [](json& c) { c["process"]["terminal"] = true; });
  auto r = runc_run(b, "c-tty-r");
  auto h = husk_run(b, "c-tty-h");
  EXPECT_NE(r.out.find("both-tty\nc\ndone"), std::string::npos) << both(r, h);
  EXPECT_EQ(r.code, h.code) << both(r, h);
  EXPECT_NE(h.out.find("both-tty\nc\ndone"), std::string::npos) << both(r, h);
}

TEST(Conformance, PidsLimitMakesForkFail) {
  // busybox sh gives up (exit 2) on the first fork the pids controller refuses.
  const char* script = "i=0; while [ $i -lt 20 ]; do sleep 1 & i=$((i+1)); done; echo all-forked";
  auto limited = make_bundle("pids", script, [](json& c) { c["linux"]["resources"]["pids"] = {{"limit", 10}}; });
  auto r = runc_run(limited, "c-pids-r");
  auto h = husk_run(limited, "c-pids-h");
  EXPECT_EQ(r.code, 2) << both(r, h);
  EXPECT_SAME(r, h);
  EXPECT_NE(h.err.find("can't fork"), std::string::npos) << h.err;
  // The same script without the limit forks all twenty.
  auto free = make_bundle("nopids", script);
  auto hf = husk_run(free, "c-nopids-h");
  EXPECT_EQ(hf.code, 0) << hf.err;
  EXPECT_EQ(hf.out, "all-forked\n");
}

TEST(Conformance, MemoryLimitOomKillsAndReportsAnEvent) {
  std::string events = scratch_dir() + "/oom-events";
  auto watcher = sh(agentctl() + " oom-events >" + events + " 2>&1 & echo $!");
  auto b = make_bundle("oom", "echo start; exec tail /dev/zero", [](json& c) {
    c["linux"]["resources"]["memory"] = {{"limit", 16 << 20}, {"swap", 16 << 20}};
  });
  auto r = runc_run(b, "c-oom-r");
  auto h = husk_run(b, "c-oom-h");
  EXPECT_EQ(r.code, 137) << both(r, h);
  EXPECT_SAME(r, h);
  std::string seen;
  for (int i = 0; i < 50 && seen.find("oom c-oom-h") == std::string::npos; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    seen = sh("cat " + events).out;
  }
  sh("kill " + watcher.out);
  EXPECT_NE(seen.find("oom c-oom-h"), std::string::npos) << "OOM events: " << seen;
}

// Starts `run_cmd` in the background and waits until `ready_cmd` succeeds.
void start_detached(const std::string& run_cmd, const std::string& ready_cmd) {
  sh("(" + run_cmd + ") &");
  for (int i = 0; i < 300; i++) {
    if (sh(ready_cmd).code == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL() << "never became ready: " << ready_cmd;
}

std::string runc_running(const std::string& id) { return runc() + " state " + id + " | grep -q '\"status\": \"running\"'"; }
std::string husk_running(const std::string& id) {
  return agentctl() + " state --id " + id + " | grep -q RUNNING";
}

TEST(Conformance, ExecIntoARunningContainer) {
  auto b = make_bundle("exec", "echo $$ >/dev/shm/pid1; sleep 30");
  start_detached(runc_run_cmd() + " -d --bundle " + b.dir + " c-exec-r >/dev/null 2>&1", runc_running("c-exec-r"));
  start_detached(agentctl() + " run --id c-exec-h --bundle " + b.dir + " >/dev/null 2>&1", husk_running("c-exec-h"));
  std::string script = "hostname; cat /dev/shm/pid1; id -u; grep -E \"^Cap(Eff|Bnd)\" /proc/self/status; ps -o pid,args | grep -c \"sleep 3[0]\"; exit 7";
  auto r = sh(runc() + " exec c-exec-r sh -c '" + script + "'");
  auto h = sh(agentctl() + " exec --id c-exec-h --exec-id e1 --bundle " + b.dir + " -- sh -c '" + script + "'");
  EXPECT_EQ(r.code, 7) << both(r, h);
  EXPECT_NE(r.out.find("husk-conformance\n1\n0\n"), std::string::npos) << both(r, h);
  EXPECT_SAME(r, h);
  // With a terminal too: one of the container's own devpts, so its name resolves in there.
  auto rt = sh("script -qec \"" + runc() + " exec -t c-exec-r sh -c '[ -t 1 ] && echo tty; tty'\" /dev/null");
  for (size_t p; (p = rt.out.find("^@")) != std::string::npos;) rt.out.erase(p, 2);
  auto ht = sh(agentctl() + " exec -t --id c-exec-h --exec-id e2 --bundle " + b.dir + " -- sh -c '[ -t 1 ] && echo tty; tty'");
  EXPECT_EQ(rt.out, "tty\n/dev/pts/0\n") << both(rt, ht);
  EXPECT_SAME(rt, ht);
  sh(runc() + " delete -f c-exec-r");
  sh(agentctl() + " kill --id c-exec-h KILL");
}

TEST(Conformance, KillAndWaitStatus) {
  // No pid namespace: as pid 1 of its own namespace, sleep would ignore SIGTERM.
  auto no_pidns = [](json& c) {
    json ns = json::array();
    for (auto& n : c["linux"]["namespaces"])
      if (n["type"] != "pid") ns.push_back(n);
    c["linux"]["namespaces"] = ns;
  };
  for (const std::string sig : {"TERM", "KILL"}) {
    auto b = make_bundle("kill" + sig, "sleep 30", no_pidns);
    std::string rid = "c-kill" + sig + "-r", hid = "c-kill" + sig + "-h";
    std::string rcode = scratch_dir() + "/" + rid + ".code", hcode = scratch_dir() + "/" + hid + ".code";
    start_detached(runc_run_cmd() + " --bundle " + b.dir + " " + rid + " >/dev/null 2>&1; echo $? >" + rcode, runc_running(rid));
    start_detached(agentctl() + " run --id " + hid + " --bundle " + b.dir + " >/dev/null 2>&1; echo $? >" + hcode, husk_running(hid));
    sh(runc() + " kill " + rid + " " + sig);
    sh(agentctl() + " kill --id " + hid + " " + sig);
    std::string r, h;
    for (int i = 0; i < 200 && (r.empty() || h.empty()); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      r = sh("cat " + rcode).out;
      h = sh("cat " + hcode).out;
    }
    EXPECT_EQ(r, sig == "TERM" ? "143\n" : "137\n");
    EXPECT_EQ(h, r) << sig;
    sh(runc() + " delete -f " + rid);
  }
}

TEST(Conformance, PauseFreezesACounter) {
  std::string out = scratch_dir() + "/counter";
  for (const std::string who : {"r", "h"}) {
    std::string dir = out + who;
    std::filesystem::create_directories(dir);
    auto b = make_bundle("pause" + who, "i=0; while :; do i=$((i+1)); echo $i >/out/n; done", [&](json& c) {
      c["mounts"].push_back({{"destination", "/out"}, {"type", "bind"}, {"source", dir}, {"options", {"rbind", "rw"}}});
    });
    std::string id = "c-pause-" + who;
    bool runc_side = who == "r";
    start_detached(runc_side ? runc_run_cmd() + " -d --bundle " + b.dir + " " + id + " >/dev/null 2>&1"
                             : agentctl() + " run --id " + id + " --bundle " + b.dir + " >/dev/null 2>&1",
                   runc_side ? runc_running(id) : husk_running(id));
    auto read = [&] {
      std::string v;
      for (int i = 0; i < 20 && v.empty(); i++) v = sh("cat " + dir + "/n").out;
      return std::atol(v.c_str());
    };
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto p = sh(runc_side ? runc() + " pause " + id : agentctl() + " pause --id " + id);
    EXPECT_EQ(p.code, 0) << p.err;
    long a = read();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    long b2 = read();
    EXPECT_EQ(a, b2) << who << ": the counter moved while paused";
    auto u = sh(runc_side ? runc() + " resume " + id : agentctl() + " resume --id " + id);
    EXPECT_EQ(u.code, 0) << u.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    long c = read();
    EXPECT_GT(c, b2) << who << ": the counter did not move after resume";
    sh(runc_side ? runc() + " delete -f " + id : agentctl() + " kill --id " + id + " KILL");
  }
}

TEST(Conformance, UserNamespaceWithMappings) {
  auto b = make_bundle("userns", "id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status", [](json& c) {
    c["linux"]["namespaces"].push_back({{"type", "user"}});
    c["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 0}, {"size", 65536}}};
    c["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 0}, {"size", 65536}}};
    // sysfs needs a network namespace owned by the user namespace; the bundle has one.
  });
  auto r = runc_run(b, "c-userns-r");
  auto h = husk_run(b, "c-userns-h");
  EXPECT_EQ(r.code, 0) << both(r, h);
  EXPECT_SAME(r, h);
}

}  // namespace
}  // namespace husk::conformance
