// `husk check` on fake host trees: each verdict of each check, produced from what the files say.
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cli/check.h"

namespace husk::check {
namespace {

namespace fs = std::filesystem;

class CheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/husk-check-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    // A ready bare-metal host: hardware KVM, cgroup v2 with the controllers, seccomp, the files.
    write("/proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme svm sse2\n");
    chardev("/dev/kvm", 0660);
    write("/proc/self/mountinfo", "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n");
    write("/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
    write("/proc/sys/kernel/seccomp/actions_avail", "kill_process kill_thread trap errno log allow\n");
    write("/proc/sys/user/max_user_namespaces", "1000\n");
    write("/usr/local/share/husk/vmlinux", "kernel", 0644);
    write("/usr/local/share/husk/agent-initramfs.cpio", "initramfs", 0644);
    write_elf("/usr/local/bin/husk-vmm", false);
    write("/usr/local/bin/husk-jailer", "jailer", 0755);
    write("/usr/lib/qemu/virtiofsd", "virtiofsd", 0755);
    write("/etc/containerd/config.toml", "[plugins.x.runtimes.husk]\n  runtime_type = \"io.containerd.husk.v2\"\n");
    write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n");
    write("/etc/subuid", "alice:100000:65536\n");
    write("/etc/husk/shim.json", "{}");
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& path, const std::string& text, mode_t mode = 0644) {
    fs::create_directories(fs::path(root_ + path).parent_path());
    std::ofstream(root_ + path) << text;
    ::chmod((root_ + path).c_str(), mode);
  }
  void chardev(const std::string& path, mode_t mode) {
    fs::create_directories(fs::path(root_ + path).parent_path());
    ::unlink((root_ + path).c_str());
    ASSERT_EQ(::mknod((root_ + path).c_str(), S_IFCHR | mode, makedev(1, 3)), 0) << strerror(errno);
    ::chmod((root_ + path).c_str(), mode);
  }
  // A 64-bit ELF header and one program header: PT_INTERP (dynamic) or PT_LOAD (static).
  void write_elf(const std::string& path, bool dynamic) {
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_phoff = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 1;
    Elf64_Phdr ph{};
    ph.p_type = dynamic ? PT_INTERP : PT_LOAD;
    std::string bytes(reinterpret_cast<char*>(&eh), sizeof eh);
    bytes.append(reinterpret_cast<char*>(&ph), sizeof ph);
    write(path, bytes, 0755);
  }
  std::vector<Finding> run_check() { return run(Host{root_, ""}); }
  Finding get(const std::string& name) {
    for (const auto& f : run_check())
      if (f.name == name) return f;
    ADD_FAILURE() << "no finding named " << name;
    return {};
  }
  std::string root_;
};

TEST_F(CheckTest, AReadyHostPassesEverything) {
  auto all = run_check();
  for (const auto& f : all) EXPECT_EQ(f.verdict, Verdict::kPass) << f.name << ": " << f.detail;
  EXPECT_EQ(exit_status(all), 0);
  // The files' hashes are printed: sha256("kernel").
  EXPECT_NE(get("guest kernel").detail.find("sha256 6923dd1b"), std::string::npos) << get("guest kernel").detail;
}

TEST_F(CheckTest, Kvm) {
  write("/proc/cpuinfo", "flags\t\t: fpu svm hypervisor sse2\n");
  EXPECT_EQ(get("hardware KVM").verdict, Verdict::kWarn);  // nested
  write("/proc/cpuinfo", "flags\t\t: fpu sse2\n");
  EXPECT_EQ(get("hardware KVM").verdict, Verdict::kFail);  // no vmx/svm
  write("/proc/cpuinfo", "flags\t\t: fpu vmx sse2\n");
  fs::create_directories(root_ + "/sys/module/kvm_pvm");
  auto pvm = get("hardware KVM");
  EXPECT_EQ(pvm.verdict, Verdict::kFail);
  EXPECT_NE(pvm.detail.find("PVM"), std::string::npos);
  ::unlink((root_ + "/dev/kvm").c_str());
  auto none = get("hardware KVM");
  EXPECT_EQ(none.verdict, Verdict::kFail);
  EXPECT_EQ(none.detail, "no /dev/kvm");
  EXPECT_EQ(exit_status(run_check()), 1);
}

TEST_F(CheckTest, DevicePermissions) {
  chardev("/dev/kvm", 0666);
  EXPECT_EQ(get("/dev/kvm permissions").verdict, Verdict::kWarn);
  chardev("/dev/vhost-vsock", 0666);
  EXPECT_EQ(get("/dev/vhost-vsock").verdict, Verdict::kWarn);
  chardev("/dev/vhost-vsock", 0600);
  EXPECT_EQ(get("/dev/vhost-vsock").verdict, Verdict::kPass);
}

TEST_F(CheckTest, CgroupV2) {
  write("/sys/fs/cgroup/cgroup.controllers", "cpu io pids\n");
  auto f = get("cgroup v2 for the jail");
  EXPECT_EQ(f.verdict, Verdict::kFail);
  EXPECT_NE(f.detail.find("memory"), std::string::npos) << f.detail;
  write("/proc/self/mountinfo", "25 1 0:22 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  EXPECT_EQ(get("cgroup v2 for the jail").detail, "no cgroup2 filesystem is mounted");
}

TEST_F(CheckTest, KernelFeatures) {
  write("/proc/sys/kernel/seccomp/actions_avail", "errno allow\n");
  EXPECT_EQ(get("seccomp").verdict, Verdict::kFail);
  write("/proc/sys/user/max_user_namespaces", "0\n");
  EXPECT_EQ(get("user namespaces").verdict, Verdict::kWarn);
}

TEST_F(CheckTest, Files) {
  ::unlink((root_ + "/usr/lib/qemu/virtiofsd").c_str());
  EXPECT_EQ(get("virtiofsd").verdict, Verdict::kFail);
  ::chmod((root_ + "/usr/local/share/husk/vmlinux").c_str(), 0600);
  auto k = get("guest kernel");
  EXPECT_EQ(k.verdict, Verdict::kFail);
  EXPECT_NE(k.detail.find("not readable by the jail"), std::string::npos) << k.detail;
  write_elf("/usr/local/bin/husk-vmm", true);
  EXPECT_EQ(get("husk-vmm").verdict, Verdict::kFail);
  write("/etc/husk/shim.json", R"({"kernel": "/boot/other"})");
  EXPECT_EQ(get("guest kernel").detail, "/boot/other is missing");
  write("/etc/husk/shim.json", R"({"vcpu": 2})");
  EXPECT_EQ(get("shim config").verdict, Verdict::kFail);
}

TEST_F(CheckTest, Containerd) {
  write("/etc/containerd/config.toml", "version = 2\n");
  EXPECT_EQ(get("containerd runtime handler").verdict, Verdict::kWarn);
}

TEST_F(CheckTest, UidRange) {
  write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nsvc:x:200050:200050::/:/bin/false\n");
  auto f = get("jail uid range");
  EXPECT_EQ(f.verdict, Verdict::kFail);
  EXPECT_NE(f.detail.find("200050 (svc)"), std::string::npos) << f.detail;
  write("/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  write("/etc/subgid", "bob:190000:20000\n");
  EXPECT_EQ(get("jail uid range").verdict, Verdict::kFail);
  write("/etc/husk/shim.json", R"({"jail_uid_min": 300000})");
  EXPECT_EQ(get("jail uid range").verdict, Verdict::kPass);
}

TEST_F(CheckTest, SecurityOptions) {
  write("/etc/husk/shim.json", R"({"jail": false, "vmm_seccomp": "log", "console": "off"})");
  EXPECT_EQ(get("jail").verdict, Verdict::kWarn);
  EXPECT_EQ(get("husk-vmm seccomp").verdict, Verdict::kWarn);
  EXPECT_EQ(get("guest console").detail, "off");
  auto j = to_json(run_check());
  ASSERT_TRUE(j.is_array());
  bool found = false;
  for (const auto& f : j)
    if (f["check"] == "jail") found = f["verdict"] == "warn" && !f["fix"].get<std::string>().empty();
  EXPECT_TRUE(found) << j.dump();
}

}  // namespace
}  // namespace husk::check
