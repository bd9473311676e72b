// The sandbox share (shim/share.h) against a guest that managed to write where the shim works:
// symlinks planted for a container's root before the shim attaches it, or swapped in before it
// detaches it, must not make the shim mount, unmount or remove anything outside the share.
// Needs root (mounts).
#include "shim/share.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace husk::shim {
namespace {

namespace fs = std::filesystem;

std::string mounts_text() {
  std::ifstream f("/proc/self/mounts");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct ShareTest : ::testing::Test {
  std::string base, dir, canary, image;
  void SetUp() override {
    char t[] = "/tmp/husk-share-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    base = t;
    dir = base + "/sandbox";
    canary = base + "/canary";   // a host directory the guest would like the shim to act on
    image = base + "/image";     // what containerd would give as a container's root
    fs::create_directories(dir);
    fs::create_directories(canary);
    fs::create_directories(image + "/bin");
    std::ofstream(canary + "/file") << "untouched";
    std::ofstream(image + "/bin/marker") << "image";
  }
  void TearDown() override {
    Share::cleanup(dir, "");
    for (const auto& p : {dir + "/shared", dir + "/mounts"}) umount2(p.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(base, ec);
  }
  void expect_canary_untouched() {
    std::ifstream f(canary + "/file");
    std::string s;
    f >> s;
    EXPECT_EQ(s, "untouched");
    EXPECT_EQ(mounts_text().find(" " + canary), std::string::npos) << mounts_text();
    EXPECT_TRUE(fs::exists(canary + "/file"));
  }
};

TEST_F(ShareTest, RootsAppearInTheReadOnlyExportWithTheirOwnFlags) {
  auto share = Share::create(dir);
  ASSERT_TRUE(share) << share.error().message;
  ASSERT_TRUE(share->add("c1", {{"bind", image, {"rbind"}}}, false));
  ASSERT_TRUE(share->add("c2", {{"bind", image, {"rbind", "ro"}}}, false));
  std::string exp = share->export_dir();
  EXPECT_TRUE(fs::exists(exp + "/c1/rootfs/bin/marker"));
  // Writable root: writable through the export; read-only root: read-only there too.
  EXPECT_TRUE(std::ofstream(exp + "/c1/rootfs/new") << "x");
  EXPECT_EQ(access((exp + "/c2/rootfs/bin").c_str(), W_OK), -1);
  EXPECT_FALSE(std::ofstream(exp + "/c2/rootfs/new") << "x");
  // The export's own directories: nothing may be created, renamed or replaced.
  EXPECT_NE(rename((exp + "/c1/rootfs").c_str(), (exp + "/c1/moved").c_str()), 0);
  EXPECT_TRUE(errno == EROFS || errno == EBUSY) << strerror(errno);
  EXPECT_NE(symlink(canary.c_str(), (exp + "/c3").c_str()), 0);
  EXPECT_EQ(errno, EROFS);
  EXPECT_NE(mkdir((exp + "/c3").c_str(), 0755), 0);
  share->remove("c1");
  EXPECT_FALSE(fs::exists(exp + "/c1"));
  EXPECT_TRUE(fs::exists(image + "/new"));  // what the container wrote stays in its image
  share->destroy();
  EXPECT_FALSE(fs::exists(dir + "/mounts"));
  EXPECT_FALSE(fs::exists(dir + "/shared"));
  EXPECT_EQ(mounts_text().find(" " + dir), std::string::npos) << mounts_text();
}

TEST_F(ShareTest, SymlinkPlantedBeforeAttachIsRefused) {
  auto share = Share::create(dir);
  ASSERT_TRUE(share) << share.error().message;
  // What a guest would do if it could write mounts/: aim the next container's directory, and
  // then its rootfs, at a host directory.
  ASSERT_EQ(symlink(canary.c_str(), (dir + "/mounts/c1").c_str()), 0);
  auto r = share->add("c1", {{"bind", image, {"rbind"}}}, false);
  EXPECT_FALSE(r);
  expect_canary_untouched();
  unlink((dir + "/mounts/c1").c_str());
  ASSERT_EQ(mkdir((dir + "/mounts/c2").c_str(), 0700), 0);
  ASSERT_EQ(symlink(canary.c_str(), (dir + "/mounts/c2/rootfs").c_str()), 0);
  r = share->add("c2", {{"bind", image, {"rbind"}}}, false);
  EXPECT_FALSE(r);
  expect_canary_untouched();
}

TEST_F(ShareTest, SymlinkSwappedInBeforeDetachIsNotFollowed) {
  auto share = Share::create(dir);
  ASSERT_TRUE(share) << share.error().message;
  ASSERT_TRUE(share->add("c1", {{"bind", image, {"rbind"}}}, false));
  // Another sandbox's root, mounted at <victim>/rootfs.
  std::string victim = base + "/victim";
  fs::create_directories(victim + "/rootfs");
  ASSERT_EQ(mount(image.c_str(), (victim + "/rootfs").c_str(), nullptr, MS_BIND, nullptr), 0);
  // c1 swapped for a symlink to the victim: <c1>/rootfs through the link is the victim's mount.
  std::string c1 = dir + "/mounts/c1";
  umount2((c1 + "/rootfs").c_str(), MNT_DETACH);
  fs::remove_all(c1);
  ASSERT_EQ(symlink(victim.c_str(), c1.c_str()), 0);
  share->remove("c1");
  EXPECT_NE(mounts_text().find(" " + victim + "/rootfs"), std::string::npos) << "the shim unmounted through a symlink";
  EXPECT_TRUE(fs::exists(victim + "/rootfs/bin/marker"));
  EXPECT_FALSE(fs::is_symlink(c1));  // the link itself went, not what it pointed at
  umount2((victim + "/rootfs").c_str(), MNT_DETACH);
  expect_canary_untouched();
}

TEST_F(ShareTest, HostFilesAndDirectoriesAContainerMountsAppearInTheExport) {
  auto share = Share::create(dir);
  ASSERT_TRUE(share.ok()) << share.error().message;
  ASSERT_TRUE(share->add("c1", {{"bind", image, {"rbind"}}}, false).ok());
  // What CRI bind-mounts into a container: a file it wrote (hosts) and a directory (a volume).
  std::string hosts = base + "/hosts", vol = base + "/vol";
  std::ofstream(hosts) << "127.0.0.1 localhost";
  fs::create_directories(vol);
  std::ofstream(vol + "/data") << "volume-data";
  auto f = share->add_volume("c1", 0, hosts, false);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(*f, "c1/volumes/0");
  auto d = share->add_volume("c1", 1, vol, true);
  ASSERT_TRUE(d.ok()) << d.error().message;
  std::ifstream hf(share->export_dir() + "/c1/volumes/0");
  std::string line;
  std::getline(hf, line);
  EXPECT_EQ(line, "127.0.0.1 localhost");
  std::ifstream vf(share->export_dir() + "/c1/volumes/1/data");
  std::string data;
  vf >> data;
  EXPECT_EQ(data, "volume-data");
  // Read-only when the mount says so: even root cannot write through it.
  EXPECT_FALSE(std::ofstream(share->export_dir() + "/c1/volumes/1/new").is_open());
  // A missing source is an error naming it.
  auto missing = share->add_volume("c1", 2, base + "/nope", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find(base + "/nope"), std::string::npos);
  // Removing the container detaches its volumes: the host's files stay, no mount is left.
  share->remove("c1");
  EXPECT_EQ(mounts_text().find(base + "/sandbox/mounts/c1"), std::string::npos) << mounts_text();
  EXPECT_TRUE(fs::exists(hosts));
  EXPECT_TRUE(fs::exists(vol + "/data"));
  expect_canary_untouched();
}

TEST_F(ShareTest, MountPointsAreMadeInAReadOnlyRootBeforeItTurnsReadOnly) {
  auto share = Share::create(dir);
  ASSERT_TRUE(share.ok()) << share.error().message;
  fs::create_directories(image + "/etc");
  fs::create_symlink(canary, image + "/escape");  // an image's symlink must not be followed
  ASSERT_TRUE(share->add("c1", {{"bind", image, {"rbind"}}}, true,
                         {{"etc/resolv.conf", false}, {"run/secrets/x", true}, {"escape/planted", false}}).ok());
  std::string root = share->export_dir() + "/c1/rootfs";
  EXPECT_TRUE(fs::is_regular_file(root + "/etc/resolv.conf"));
  EXPECT_TRUE(fs::is_directory(root + "/run/secrets/x"));
  EXPECT_FALSE(fs::exists(canary + "/planted"));
  // And the root is read-only all the same.
  EXPECT_FALSE(std::ofstream(root + "/etc/new-file").is_open());
  share->remove("c1");
  expect_canary_untouched();
}

}  // namespace
}  // namespace husk::shim
