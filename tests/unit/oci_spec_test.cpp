// config.json parsing and validation: what runs, what is refused, and the message naming the
// field a person has to fix.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include "guest-agent/oci/capabilities.h"
#include "guest-agent/oci/spec.h"

namespace husk::agent::oci {
namespace {

using json = nlohmann::json;

json minimal() {
  return json{{"ociVersion", "1.0.2"},
              {"process", {{"args", {"sh"}}, {"cwd", "/"}, {"env", {"PATH=/bin"}}}},
              {"root", {{"path", "rootfs"}}}};
}

std::string error_of(const json& j) {
  auto r = parse_spec(j.dump());
  return r ? std::string("(parsed)") : r.error().message;
}

TEST(OciSpec, ParsesAFullConfig) {
  json j = minimal();
  j["process"]["user"] = {{"uid", 1000}, {"gid", 100}, {"additionalGids", {10, 11}}, {"umask", 18}};
  j["process"]["terminal"] = true;
  j["process"]["consoleSize"] = {{"height", 40}, {"width", 120}};
  j["process"]["capabilities"] = {{"bounding", {"CAP_CHOWN", "CAP_KILL"}}, {"effective", {"CAP_KILL"}}};
  j["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 100}, {"hard", 200}}};
  j["process"]["noNewPrivileges"] = true;
  j["process"]["oomScoreAdj"] = -500;
  j["root"]["readonly"] = true;
  j["hostname"] = "h";
  j["mounts"] = {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
                 {{"destination", "/data"}, {"type", "bind"}, {"source", "/srv"}, {"options", {"rbind", "ro", "rprivate", "nosuid"}}},
                 {{"destination", "/tmp"}, {"type", "tmpfs"}, {"options", {"size=64k", "mode=1777", "noexec"}}}};
  j["linux"] = {{"namespaces", {{{"type", "pid"}}, {{"type", "mount"}}, {{"type", "network"}, {"path", "/proc/1/ns/net"}}}},
                {"resources", {{"memory", {{"limit", 1 << 20}}}, {"cpu", {{"shares", 512}, {"quota", 50000}, {"period", 100000}, {"cpus", "0-1"}}},
                               {"pids", {{"limit", 64}}}}},
                {"devices", {{{"path", "/dev/fuse"}, {"type", "c"}, {"major", 10}, {"minor", 229}, {"fileMode", 438}}}},
                {"maskedPaths", {"/proc/kcore"}},
                {"readonlyPaths", {"/proc/sys"}},
                {"sysctl", {{"net.ipv4.ip_forward", "1"}}},
                {"rootfsPropagation", "rslave"},
                {"cgroupsPath", "/tenants/a"}};
  auto r = parse_spec(j.dump());
  ASSERT_TRUE(r) << r.error().message;
  const Spec& s = *r;
  EXPECT_EQ(s.process.user.uid, 1000u);
  EXPECT_EQ(s.process.user.additional_gids, (std::vector<uint32_t>{10, 11}));
  EXPECT_EQ(*s.process.user.umask, 18u);
  EXPECT_TRUE(s.process.terminal);
  EXPECT_EQ(s.process.console_rows, 40);
  ASSERT_TRUE(s.process.capabilities);
  EXPECT_EQ(s.process.capabilities->bounding, (1ULL << 0) | (1ULL << 5));
  EXPECT_EQ(s.process.capabilities->effective, 1ULL << 5);
  ASSERT_EQ(s.process.rlimits.size(), 1u);
  EXPECT_EQ(s.process.rlimits[0].resource, RLIMIT_NOFILE);
  EXPECT_EQ(*s.process.oom_score_adj, -500);
  ASSERT_EQ(s.mounts.size(), 3u);
  EXPECT_TRUE(s.mounts[1].bind);
  EXPECT_EQ(s.mounts[1].flags & (MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID), MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID);
  EXPECT_EQ(s.mounts[1].propagation, (std::vector<unsigned long>{MS_PRIVATE | MS_REC}));
  EXPECT_EQ(s.mounts[2].data, "size=64k,mode=1777");
  EXPECT_EQ(s.mounts[2].flags, static_cast<unsigned long>(MS_NOEXEC));
  EXPECT_TRUE(s.has_namespace(CLONE_NEWPID));
  ASSERT_NE(s.find_namespace(CLONE_NEWNET), nullptr);
  EXPECT_EQ(s.find_namespace(CLONE_NEWNET)->path, "/proc/1/ns/net");
  EXPECT_EQ(*s.resources.memory_limit, 1 << 20);
  EXPECT_EQ(*s.resources.cpu_quota, 50000);
  EXPECT_EQ(s.resources.cpuset_cpus, "0-1");
  EXPECT_EQ(*s.resources.pids_limit, 64);
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_EQ(s.devices[0].minor, 229);
  EXPECT_EQ(s.sysctl.at("net.ipv4.ip_forward"), "1");
  EXPECT_EQ(s.rootfs_propagation, static_cast<unsigned long>(MS_SLAVE | MS_REC));
  EXPECT_EQ(s.cgroups_path, "/tenants/a");
}

TEST(OciSpec, RejectsMalformedInputWithTheFieldName) {
  EXPECT_NE(parse_spec("{not json").error().message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_spec("[]").error().message.find("expected an object"), std::string::npos);

  json j = minimal();
  j["process"]["user"] = {{"uid", "root"}};
  EXPECT_NE(error_of(j).find("process.user.uid: expected a non-negative integer, got string"), std::string::npos) << error_of(j);

  j = minimal();
  j["process"]["user"] = {{"uid", -1}};
  EXPECT_NE(error_of(j).find("process.user.uid"), std::string::npos);

  j = minimal();
  j["process"]["user"] = {{"uid", 1ULL << 33}};
  EXPECT_NE(error_of(j).find("larger than"), std::string::npos);

  j = minimal();
  j["process"].erase("args");
  EXPECT_NE(error_of(j).find("process.args: missing"), std::string::npos);

  j = minimal();
  j["process"]["args"] = json::array();
  EXPECT_NE(error_of(j).find("process.args: empty"), std::string::npos);

  j = minimal();
  j["process"]["env"] = {"NOEQUALS"};
  EXPECT_NE(error_of(j).find("process.env[0]"), std::string::npos);

  j = minimal();
  j.erase("root");
  EXPECT_NE(error_of(j).find("root: missing"), std::string::npos);

  j = minimal();
  j["ociVersion"] = "2.0.0";
  EXPECT_NE(error_of(j).find("ociVersion"), std::string::npos);
}

TEST(OciSpec, RejectsUnknownAndDuplicateNamespaces) {
  json j = minimal();
  j["linux"]["namespaces"] = {{{"type", "pid"}}, {{"type", "bogus"}}};
  EXPECT_NE(error_of(j).find("unknown namespace \"bogus\""), std::string::npos) << error_of(j);
  j["linux"]["namespaces"] = {{{"type", "pid"}}, {{"type", "pid"}}};
  EXPECT_NE(error_of(j).find("listed twice"), std::string::npos);
  j["linux"]["namespaces"] = {{{"type", "user"}}};
  EXPECT_NE(error_of(j).find("needs linux.uidMappings"), std::string::npos);
  j["linux"]["namespaces"] = {{{"type", "net"}, {"path", "relative"}}};
  EXPECT_NE(error_of(j).find("unknown namespace"), std::string::npos);
  j["linux"]["namespaces"] = {{{"type", "network"}, {"path", "relative"}}};
  EXPECT_NE(error_of(j).find("absolute"), std::string::npos);
}

TEST(OciSpec, RejectsPathTraversal) {
  json j = minimal();
  j["mounts"] = {{{"destination", "/proc/../../etc"}, {"type", "proc"}}};
  EXPECT_NE(error_of(j).find("climbs out"), std::string::npos) << error_of(j);
  j["mounts"] = {{{"destination", "relative/dir"}, {"type", "tmpfs"}}};
  EXPECT_NE(error_of(j).find("not an absolute path"), std::string::npos);
  j["mounts"] = {{{"destination", "/"}, {"type", "tmpfs"}}};
  EXPECT_NE(error_of(j).find("cannot mount over"), std::string::npos);
  j = minimal();
  j["process"]["cwd"] = "/a/../..";
  EXPECT_NE(error_of(j).find("process.cwd"), std::string::npos);
  j = minimal();
  j["linux"]["maskedPaths"] = {"/proc/.."};
  EXPECT_NE(error_of(j).find("linux.maskedPaths"), std::string::npos);
  j = minimal();
  j["linux"]["devices"] = {{{"path", "/etc/shadow"}, {"type", "c"}, {"major", 1}, {"minor", 3}}};
  EXPECT_NE(error_of(j).find("under /dev"), std::string::npos);
  j = minimal();
  j["linux"]["sysctl"] = {{"../../etc/x", "1"}};
  EXPECT_NE(error_of(j).find("not a sysctl name"), std::string::npos);
  j = minimal();
  j["linux"]["resources"]["unified"] = {{"../cgroup.procs", "1"}};
  EXPECT_NE(error_of(j).find("not a cgroup file name"), std::string::npos);
  EXPECT_TRUE(check_container_path("p", "/a/..b/c.."));  // ".." only as a whole name
}

TEST(OciSpec, RejectsAbsurdLimitsAndHugeInputs) {
  json j = minimal();
  j["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 10}, {"hard", 5}}};
  EXPECT_NE(error_of(j).find("soft limit 10 exceeds hard limit 5"), std::string::npos) << error_of(j);
  j["process"]["rlimits"] = {{{"type", "RLIMIT_BOGUS"}, {"soft", 1}, {"hard", 1}}};
  EXPECT_NE(error_of(j).find("unknown resource limit"), std::string::npos);
  j["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 1}, {"hard", 1}}, {{"type", "RLIMIT_NOFILE"}, {"soft", 1}, {"hard", 1}}};
  EXPECT_NE(error_of(j).find("given twice"), std::string::npos);
  j = minimal();
  j["process"]["oomScoreAdj"] = 5000;
  EXPECT_NE(error_of(j).find("outside [-1000, 1000]"), std::string::npos);
  j = minimal();
  j["linux"]["resources"]["memory"] = {{"limit", 100}};
  EXPECT_NE(error_of(j).find("below one page"), std::string::npos);
  j = minimal();
  j["linux"]["resources"]["cpu"] = {{"cpus", "0-3; rm -rf /"}};
  EXPECT_NE(error_of(j).find("cpus/mems"), std::string::npos);

  j = minimal();
  json env = json::array();
  for (int i = 0; i < 10000; i++) env.push_back(std::string("V").append(std::to_string(i)).append("=x"));
  j["process"]["env"] = env;
  EXPECT_NE(error_of(j).find("more than the limit"), std::string::npos) << error_of(j);
  j = minimal();
  j["process"]["env"] = {"BIG=" + std::string(200000, 'x')};
  EXPECT_NE(error_of(j).find("string longer than"), std::string::npos);
  j = minimal();
  env = json::array();
  for (int i = 0; i < 100; i++) env.push_back(std::string("V").append(std::to_string(i)).append("=").append(20000, 'y'));
  j["process"]["env"] = env;
  EXPECT_NE(error_of(j).find("more than execve accepts"), std::string::npos);
  EXPECT_NE(parse_spec(std::string(kMaxConfigBytes + 1, ' ')).error().message.find("limit"), std::string::npos);
  j = minimal();
  j["process"]["args"] = {std::string("a\0b", 3)};
  EXPECT_NE(error_of(j).find("NUL"), std::string::npos);
}

TEST(OciSpec, SeccompActionsAndArguments) {
  json j = minimal();
  j["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_ERRNO"},
                           {"defaultErrnoRet", 38},
                           {"architectures", {"SCMP_ARCH_X86_64"}},
                           {"syscalls", {{{"names", {"read", "write"}}, {"action", "SCMP_ACT_ALLOW"}},
                                         {{"names", {"personality"}}, {"action", "SCMP_ACT_ALLOW"},
                                          {"args", {{{"index", 0}, {"value", 0}, {"op", "SCMP_CMP_EQ"}}}}}}}};
  auto r = parse_spec(j.dump());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->seccomp);
  EXPECT_EQ(r->seccomp->syscalls.size(), 2u);
  EXPECT_EQ(r->seccomp->syscalls[1].args.size(), 1u);

  j["linux"]["seccomp"]["defaultAction"] = "SCMP_ACT_BOGUS";
  EXPECT_NE(error_of(j).find("unknown seccomp action"), std::string::npos);
  j["linux"]["seccomp"]["defaultAction"] = "SCMP_ACT_NOTIFY";
  EXPECT_NE(error_of(j).find("not support"), std::string::npos);
  j["linux"]["seccomp"]["defaultAction"] = "SCMP_ACT_ALLOW";
  j["linux"]["seccomp"]["architectures"] = {"SCMP_ARCH_VAX"};
  EXPECT_NE(error_of(j).find("unknown architecture"), std::string::npos);
  j["linux"]["seccomp"]["architectures"] = {"SCMP_ARCH_X86_64"};
  j["linux"]["seccomp"]["syscalls"][1]["args"][0]["index"] = 6;
  EXPECT_NE(error_of(j).find("larger than 5"), std::string::npos) << error_of(j);
  j["linux"]["seccomp"]["syscalls"][1]["args"][0]["index"] = 0;
  j["linux"]["seccomp"]["syscalls"][1]["args"][0]["op"] = "SCMP_CMP_SOMETIMES";
  EXPECT_NE(error_of(j).find("unknown comparison"), std::string::npos);
}

TEST(OciCapabilities, NamesMapToNumbers) {
  EXPECT_EQ(capability_from_name("CAP_CHOWN"), 0);
  EXPECT_EQ(capability_from_name("CAP_KILL"), 5);
  EXPECT_EQ(capability_from_name("CAP_NET_ADMIN"), 12);
  EXPECT_EQ(capability_from_name("CAP_SYS_ADMIN"), 21);
  EXPECT_EQ(capability_from_name("CAP_AUDIT_WRITE"), 29);
  EXPECT_EQ(capability_from_name("CAP_BPF"), 39);
  EXPECT_FALSE(capability_from_name("chown"));        // the prefix is required
  EXPECT_FALSE(capability_from_name("CAP_BOGUS"));
  EXPECT_FALSE(capability_from_name(""));
  EXPECT_GE(last_capability(), 37);
}

TEST(OciCapabilities, UnknownCapabilitiesAreLeftOutLikeRunc) {
  json j = minimal();
  j["process"]["capabilities"] = {{"bounding", {"CAP_KILL", "CAP_FROM_THE_FUTURE"}}};
  auto r = parse_spec(j.dump());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->process.capabilities->bounding, 1ULL << 5);
}

TEST(OciProcessAndResources, ParseAlone) {
  auto p = parse_process(R"({"args": ["ls", "-l"], "cwd": "/tmp", "terminal": true})");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->args.size(), 2u);
  EXPECT_TRUE(p->terminal);
  EXPECT_FALSE(parse_process(R"({"cwd": "/"})"));
  auto r = parse_resources(R"({"memory": {"limit": 67108864, "swap": -1}, "pids": {"limit": 5}, "unified": {"memory.high": "50M"}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r->memory_swap, -1);
  EXPECT_EQ(r->unified.at("memory.high"), "50M");
  EXPECT_FALSE(parse_resources(R"({"memory": {"limit": "lots"}})"));
}

}  // namespace
}  // namespace husk::agent::oci
