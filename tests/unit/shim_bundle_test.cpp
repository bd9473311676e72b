// What the shim hands a VM's agent from config.json: the host's network namespace path dropped,
// host bind mounts replaced by their place in the share, CRI's pod /dev/shm made a guest tmpfs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "shim/bundle.h"

namespace husk::shim {
namespace {

struct BundleTest : ::testing::Test {
  std::string dir;
  void SetUp() override {
    char t[] = "/tmp/husk-bundle-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    dir = t;
  }
  void TearDown() override { std::system(("rm -rf " + dir).c_str()); }
  Bundle load(const std::string& json) {
    std::ofstream(dir + "/config.json") << json;
    auto b = load_bundle(dir);
    EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
    return b.ok() ? *b : Bundle{};
  }
};

TEST_F(BundleTest, GuestConfigDropsTheNetnsPathAndSharesHostBindMounts) {
  auto b = load(R"({"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "root": {"path": "rootfs"},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/cri/sb/hosts", "options": ["rbind", "rprivate", "rw"]},
               {"destination": "/etc/resolv.conf", "type": "bind", "source": "/var/lib/cri/sb/resolv.conf", "options": ["rbind", "ro"]},
               {"destination": "/dev/shm", "type": "bind", "source": "/run/cri/sb/shm", "options": ["rbind", "rw"]}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1"}]}})");
  EXPECT_EQ(b.netns_path, "/var/run/netns/cni-1");
  std::vector<std::pair<std::string, bool>> shared;
  auto out = config_for_guest(b, [&](const std::string& source, bool ro) -> Result<std::string> {
    shared.emplace_back(source, ro);
    return "/run/husk/share/c1/volumes/" + std::to_string(shared.size() - 1);
  });
  ASSERT_TRUE(out.ok()) << out.error().message;
  auto spec = nlohmann::json::parse(*out);
  ASSERT_EQ(spec["linux"]["namespaces"].size(), 1u);
  EXPECT_EQ(spec["linux"]["namespaces"][0]["type"], "pid");
  ASSERT_EQ(shared.size(), 2u);
  EXPECT_EQ(shared[0], std::make_pair(std::string("/var/lib/cri/sb/hosts"), false));
  EXPECT_EQ(shared[1], std::make_pair(std::string("/var/lib/cri/sb/resolv.conf"), true));
  EXPECT_EQ(spec["mounts"][0]["source"], "proc");
  EXPECT_EQ(spec["mounts"][1]["source"], "/run/husk/share/c1/volumes/0");
  EXPECT_EQ(spec["mounts"][2]["source"], "/run/husk/share/c1/volumes/1");
  EXPECT_EQ(spec["mounts"][3]["type"], "tmpfs");
  EXPECT_EQ(spec["mounts"][3]["destination"], "/dev/shm");
}

TEST_F(BundleTest, AShareFailureFailsTheConfigAndNamesTheSource) {
  auto b = load(R"({"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "root": {"path": "rootfs"},
    "mounts": [{"destination": "/data", "type": "bind", "source": "/nonexistent/vol", "options": ["rbind"]}]})");
  auto out = config_for_guest(b, [](const std::string& source, bool) -> Result<std::string> {
    return make_error(ErrorCode::kFailedPrecondition, "bind mount source %s: No such file or directory", source.c_str());
  });
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(out.error().message.find("/nonexistent/vol"), std::string::npos);
  // Without bind mounts or a namespace path the config goes through as containerd wrote it.
  auto plain = load(R"({"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "root": {"path": "rootfs"}})");
  auto same = config_for_guest(plain, [](const std::string&, bool) -> Result<std::string> { return make_error("unused"); });
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(nlohmann::json::parse(*same), plain.spec);
}

TEST_F(BundleTest, APodSandboxWithoutANetworkNamespaceIsHostNetwork) {
  auto ann = [](const char* type) {
    return std::string(R"("annotations": {"io.kubernetes.cri.container-type": ")") + type + R"("})";
  };
  // The CRI plugin drops the network namespace from a hostNetwork pod's sandbox spec.
  EXPECT_TRUE(load(R"({"ociVersion": "1.0.2", )" + ann("sandbox") + R"(, "linux": {"namespaces": [{"type": "pid"}]}})").host_network);
  // A pod on CNI names its namespace; ctr's default spec asks for a new one: neither is the host's.
  EXPECT_FALSE(load(R"({"ociVersion": "1.0.2", )" + ann("sandbox") +
                    R"(, "linux": {"namespaces": [{"type": "network", "path": "/var/run/netns/cni-1"}]}})").host_network);
  EXPECT_FALSE(load(R"({"ociVersion": "1.0.2", )" + ann("sandbox") + R"(, "linux": {"namespaces": [{"type": "network"}]}})").host_network);
  // Only the sandbox says so: a pod's container joins whatever the sandbox has.
  EXPECT_FALSE(load(R"({"ociVersion": "1.0.2", )" + ann("container") + R"(, "linux": {"namespaces": [{"type": "pid"}]}})").host_network);
  EXPECT_FALSE(load(R"({"ociVersion": "1.0.2", "linux": {"namespaces": []}})").host_network);
}

}  // namespace
}  // namespace husk::shim
