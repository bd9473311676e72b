// The shim's per-process lifecycle (what containerd may do to a task in each state) and the
// sandbox configuration: runtime options, config file validation, VM sizing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "github.com/containerd/containerd/pkg/runtimeoptions/v1/api.pb.h"
#include "shim/config.h"
#include "shim/process_state.h"

namespace husk::shim {
namespace {

using S = ProcessState::Status;

TEST(ProcessState, InitLifecycle) {
  ProcessState p;
  EXPECT_EQ(p.status(), S::kCreated);
  ASSERT_TRUE(p.check_exec());  // runc allows exec before start
  ASSERT_TRUE(p.start());
  EXPECT_TRUE(p.live());
  ASSERT_TRUE(p.pause());
  EXPECT_EQ(p.status(), S::kPaused);
  EXPECT_FALSE(p.check_exec());
  ASSERT_TRUE(p.resume());
  timespec at{100, 5};
  p.exited(137, at);
  EXPECT_EQ(p.status(), S::kStopped);
  EXPECT_EQ(p.exit_status(), 137u);
  EXPECT_EQ(p.exited_at().tv_sec, 100);
  ASSERT_TRUE(p.remove());
  EXPECT_EQ(p.status(), S::kDeleted);
}

TEST(ProcessState, RefusesWhatRuncRefuses) {
  ProcessState p;
  EXPECT_FALSE(p.pause());   // created
  EXPECT_FALSE(p.resume());  // created
  ASSERT_TRUE(p.start());
  auto again = p.start();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "cannot start a running process");
  EXPECT_FALSE(p.resume());
  auto del = p.remove();
  ASSERT_FALSE(del);
  EXPECT_EQ(del.error().message, "cannot delete a running process");
  ASSERT_TRUE(p.pause());
  EXPECT_FALSE(p.pause());
  EXPECT_FALSE(p.remove());  // paused
  p.exited(0, {});
  EXPECT_FALSE(p.start());
  EXPECT_FALSE(p.pause());
  EXPECT_FALSE(p.check_exec());
  ASSERT_TRUE(p.remove());
  EXPECT_FALSE(p.remove());  // twice
  EXPECT_FALSE(p.start());
}

TEST(ProcessState, CreatedProcessCanBeDeleted) {
  ProcessState p;
  ASSERT_TRUE(p.remove());
  EXPECT_EQ(p.status(), S::kDeleted);
  EXPECT_FALSE(p.start());
}

TEST(ProcessState, FirstExitWins) {
  ProcessState p;
  ASSERT_TRUE(p.start());
  p.exited(3, {1, 0});
  p.exited(255, {2, 0});  // a late error from a broken agent stream
  EXPECT_EQ(p.exit_status(), 3u);
  EXPECT_EQ(p.exited_at().tv_sec, 1);
}

TEST(ProcessState, ExitWhilePausedStops) {
  ProcessState p;
  ASSERT_TRUE(p.start());
  ASSERT_TRUE(p.pause());
  p.exited(9, {});
  EXPECT_EQ(p.status(), S::kStopped);
  EXPECT_FALSE(p.resume());
}

google::protobuf::Any options(const std::string& type_url, const std::string& path) {
  runtimeoptions::v1::Options o;
  o.set_config_path(path);
  google::protobuf::Any a;
  a.set_type_url(type_url);
  a.set_value(o.SerializeAsString());
  return a;
}

TEST(ShimConfig, ConfigPathFromRuntimeOptions) {
  auto p = config_path_from(options("runtimeoptions.v1.Options", "/etc/husk/big.json"));
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "/etc/husk/big.json");
  p = config_path_from(options("type.googleapis.com/runtimeoptions.v1.Options", "/x.json"));
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "/x.json");
  // runc's options type and no options at all: no path, not an error.
  p = config_path_from(options("containerd.runc.v1.Options", "/ignored"));
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "");
  p = config_path_from(google::protobuf::Any());
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "");
  google::protobuf::Any junk;
  junk.set_type_url("runtimeoptions.v1.Options");
  junk.set_value("\xff\xff\xff");
  EXPECT_FALSE(config_path_from(junk));
}

class ConfigFile : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { unlink(path_.c_str()); }
  std::string path_ = "/tmp/husk-shim-config-test-" + std::to_string(getpid()) + ".json";
};

TEST_F(ConfigFile, ReadsFields) {
  auto c = load_config(write(R"({"mode":"host","vcpus":2,"memory_mib":512,"kernel":"/k","log_level":"debug"})"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->mode, "host");
  EXPECT_EQ(c->vcpus, 2u);
  EXPECT_EQ(c->memory_mib, 512u);
  EXPECT_EQ(c->kernel, "/k");
  EXPECT_EQ(c->virtiofs_cache, "auto");  // virtiofsd's default: names and attributes kept a second
  auto none = load_config(write(R"({"virtiofs_cache":"none"})"));
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->virtiofs_cache, "none");
}

TEST_F(ConfigFile, RejectsTyposAndBadValues) {
  auto c = load_config(write(R"({"vcpu":2})"));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("unknown field \"vcpu\""), std::string::npos) << c.error().message;
  EXPECT_FALSE(load_config(write(R"({"mode":"container"})")));
  EXPECT_FALSE(load_config(write(R"({"vcpus":0})")));
  EXPECT_FALSE(load_config(write(R"({"memory_mib":16})")));
  EXPECT_FALSE(load_config(write(R"({"vcpus":"two"})")));
  auto cache = load_config(write(R"({"virtiofs_cache":"never"})"));
  ASSERT_FALSE(cache);
  EXPECT_NE(cache.error().message.find("virtiofs_cache must be"), std::string::npos) << cache.error().message;
  EXPECT_FALSE(load_config(write("{")));
  EXPECT_FALSE(load_config("/nonexistent/husk.json"));  // named explicitly: must exist
}

nlohmann::json spec(const nlohmann::json& annotations, const nlohmann::json& resources = nullptr) {
  nlohmann::json s = {{"ociVersion", "1.0.2"}};
  if (!annotations.is_null()) s["annotations"] = annotations;
  if (!resources.is_null()) s["linux"]["resources"] = resources;
  return s;
}

TEST(VmSize, DefaultsWithoutLimits) {
  Config base;
  auto c = size_for(base, spec(nullptr));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->vcpus, base.vcpus);
  EXPECT_EQ(c->memory_mib, base.memory_mib);
}

TEST(VmSize, AnnotationsAreAbsolute) {
  auto c = size_for(Config(), spec({{"io.husk.vcpus", "3"}, {"io.husk.memory_mib", "1024"}},
                                   {{"memory", {{"limit", 1 << 30}}}, {"cpu", {{"quota", 800000}, {"period", 100000}}}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->vcpus, 3u);
  EXPECT_EQ(c->memory_mib, 1024u);
}

TEST(VmSize, LimitsGrowTheDefaults) {
  Config base;  // 1 vCPU, 256 MiB
  auto c = size_for(base, spec(nullptr, {{"memory", {{"limit", 128 << 20}}}, {"cpu", {{"quota", 250000}, {"period", 100000}}}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->vcpus, 3u);  // 2.5 CPUs of quota
  EXPECT_EQ(c->memory_mib, 256u + 128u);
  // A quota below the default does not shrink the VM; no period means the kernel's 100 ms.
  c = size_for(base, spec(nullptr, {{"cpu", {{"quota", 50000}}}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->vcpus, 1u);
  // runc's "unlimited" (-1) is no limit.
  c = size_for(base, spec(nullptr, {{"memory", {{"limit", -1}}}, {"cpu", {{"quota", -1}}}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->memory_mib, 256u);
  EXPECT_EQ(c->vcpus, 1u);
}

TEST(VmSize, CriPodAnnotations) {
  auto c = size_for(Config(), spec({{"io.kubernetes.cri.sandbox-cpu-quota", "200000"},
                                    {"io.kubernetes.cri.sandbox-cpu-period", "100000"},
                                    {"io.kubernetes.cri.sandbox-memory", "536870912"}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->vcpus, 2u);
  EXPECT_EQ(c->memory_mib, 256u + 512u);
}

TEST(VmSize, RejectsNonsense) {
  EXPECT_FALSE(size_for(Config(), spec({{"io.husk.vcpus", "many"}})));
  EXPECT_FALSE(size_for(Config(), spec({{"io.husk.vcpus", "65"}})));
  EXPECT_FALSE(size_for(Config(), spec({{"io.husk.vcpus", 2}})));  // annotations are strings
  EXPECT_FALSE(size_for(Config(), spec({{"io.husk.memory_mib", "8"}})));
  EXPECT_FALSE(size_for(Config(), spec({{"io.husk.memory_mib", "99999999999999999999"}})));
  // An absurd CPU quota is capped, not an error (it is the container's business).
  auto c = size_for(Config(), spec(nullptr, {{"cpu", {{"quota", 100000000}, {"period", 1000}}}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->vcpus, 64u);
}

TEST(ShimSizing, AnnotationsStayWithinTheConfiguredMaxima) {
  Config base;
  base.max_vcpus = 4;
  base.max_memory_mib = 2048;
  auto ok = size_for(base, spec({{"io.husk.vcpus", "4"}, {"io.husk.memory_mib", "2048"}}));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->vcpus, 4u);
  auto cpus = size_for(base, spec({{"io.husk.vcpus", "5"}}));
  ASSERT_FALSE(cpus);
  EXPECT_NE(cpus.error().message.find("max_vcpus (4)"), std::string::npos) << cpus.error().message;
  auto mem = size_for(base, spec({{"io.husk.memory_mib", "2049"}}));
  ASSERT_FALSE(mem);
  EXPECT_NE(mem.error().message.find("max_memory_mib (2048)"), std::string::npos) << mem.error().message;
  // Limits (the workload's own business) are capped at the maxima, not refused.
  auto limits = size_for(base, spec(nullptr, {{"memory", {{"limit", int64_t{64} << 30}}}, {"cpu", {{"quota", 3200000}}}}));
  ASSERT_TRUE(limits);
  EXPECT_EQ(limits->vcpus, 4u);
  EXPECT_EQ(limits->memory_mib, 2048u);
}

TEST(ShimConfig, MaximaDefaultToThisHostAndBoundTheDefaults) {
  char path[] = "/tmp/husk-shim-max-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = R"({"max_vcpus": 2, "vcpus": 3})";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  auto bad = load_config(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("max_vcpus"), std::string::npos);
  std::ofstream(path) << R"({"console": "off", "console_limit": 65536})";
  auto c = load_config(path);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->console, "off");
  EXPECT_GE(c->max_vcpus, 1u);
  EXPECT_GE(c->max_memory_mib, 64u);
  std::ofstream(path) << R"({"console": "tty"})";
  EXPECT_FALSE(load_config(path));
  unlink(path);
}

}  // namespace
}  // namespace husk::shim
