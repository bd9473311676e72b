// husk-vmm's own checks as a process, on any host, with or without /dev/kvm: argument errors,
// broken boot files (rejected before /dev/kvm is opened), the PVM refusal (against a fake sysfs
// that a test can point husk-vmm at) and the message a host without KVM gets. Running guests
// on KVM is tests/testhost/vmm_tiny_test.cpp's job.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

struct Result {
  int code = -1;
  std::string out;
};

Result sh(const std::string& cmd) {
  Result r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> b;
  size_t n;
  while ((n = fread(b.data(), 1, b.size(), p)) > 0) r.out.append(b.data(), n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

const std::string kVmm = HUSK_VMM_PATH;
// No device here on any host: husk-vmm must not get as far as opening KVM in these tests, and
// where it would, the answer is the no-KVM message.
const std::string kNoKvm = "HUSK_KVM_DEVICE=/nonexistent/kvm ";

std::string write_file(const std::string& name, const std::string& bytes) {
  std::string path = std::string(::testing::TempDir()) + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// A sysfs root with (or without) the kvm_pvm module, and a character device standing in for
// /dev/kvm (/dev/null: the PVM check runs before anything opens it).
std::string fake_sysfs(bool pvm) {
  std::string root = std::string(::testing::TempDir()) + (pvm ? "sys-pvm" : "sys-plain");
  std::filesystem::create_directories(root + "/module/kvm");
  if (pvm) std::filesystem::create_directories(root + "/module/kvm_pvm");
  return root;
}

TEST(VmmCli, BadArgumentsExitOneWithAMessage) {
  auto r = sh(kVmm + " --mem 12 --kernel x");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--mem"), std::string::npos) << r.out;
  r = sh(kVmm);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--kernel"), std::string::npos) << r.out;
  r = sh(kVmm + " --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--vcpus"), std::string::npos) << r.out;
  r = sh(kVmm + " --kernel k --cmdline a --append b");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--append"), std::string::npos) << r.out;
}

TEST(VmmCli, BrokenKernelFilesGetAClearErrorBeforeKvmIsOpened) {
  auto missing = sh(kNoKvm + kVmm + " --kernel /nonexistent/vmlinux");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("cannot open kernel"), std::string::npos) << missing.out;
  auto not_elf = sh(kNoKvm + kVmm + " --kernel " + write_file("bz", std::string(4096, 'M')));
  EXPECT_EQ(not_elf.code, 1);
  EXPECT_NE(not_elf.out.find("not an ELF"), std::string::npos) << not_elf.out;
  std::string head = "\x7f" "ELF\x02\x01\x01";
  head.resize(40, '\0');  // ELF magic, then cut off inside the header
  auto trunc = sh(kNoKvm + kVmm + " --kernel " + write_file("trunc", head));
  EXPECT_EQ(trunc.code, 1);
  EXPECT_NE(trunc.out.find("too small"), std::string::npos) << trunc.out;
  auto empty = sh(kNoKvm + kVmm + " --kernel " + write_file("empty", ""));
  EXPECT_EQ(empty.code, 1);
  EXPECT_NE(empty.out.find("empty"), std::string::npos) << empty.out;
  auto dev_initrd = sh(kNoKvm + kVmm + " --kernel " HUSK_KERNEL_PATH " --initrd /dev/null");
  EXPECT_EQ(dev_initrd.code, 1);
  EXPECT_NE(dev_initrd.out.find("initrd /dev/null is not a regular file"), std::string::npos) << dev_initrd.out;
  auto initrd_without_kernel = sh(kNoKvm + kVmm + " --bin " + write_file("t2", "\xf4") + " --initrd /dev/null");
  EXPECT_EQ(initrd_without_kernel.code, 1);
  // None of these got as far as KVM.
  for (const auto* r : {&missing, &not_elf, &trunc, &empty, &dev_initrd})
    EXPECT_EQ(r->out.find("/nonexistent/kvm"), std::string::npos) << r->out;
}

TEST(VmmCli, RefusesToBootLinuxOnPvmWithDirections) {
  // A fake sysfs with kvm_pvm loaded and a device present: the refusal, on any host.
  auto r = sh("HUSK_SYSFS_ROOT=" + fake_sysfs(true) + " HUSK_KVM_DEVICE=/dev/null " + kVmm +
              " --kernel " HUSK_KERNEL_PATH " --console none");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is PVM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test host"), std::string::npos) << r.out;
  // kvm_pvm loaded but no device (the machines without /dev/kvm): told so, and where to go.
  r = sh("HUSK_SYSFS_ROOT=" + fake_sysfs(true) + " " + kNoKvm + kVmm + " --kernel " HUSK_KERNEL_PATH);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("has no /nonexistent/kvm"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test host"), std::string::npos) << r.out;
  // This host as it is, when it is a PVM host: the same refusal from the real sysfs.
  struct stat st;
  if (stat("/sys/module/kvm_pvm", &st) == 0 && stat("/dev/kvm", &st) == 0) {
    r = sh(kVmm + " --kernel " HUSK_KERNEL_PATH " --console none");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("is PVM"), std::string::npos) << r.out;
  }
}

TEST(VmmCli, HostWithoutKvmGetsAClearError) {
  // No PVM module and no device: the files are fine, so husk-vmm tries KVM and says it is absent.
  auto r = sh("HUSK_SYSFS_ROOT=" + fake_sysfs(false) + " " + kNoKvm + kVmm + " --kernel " HUSK_KERNEL_PATH);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("cannot open /nonexistent/kvm: no such device: this host has no KVM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test host"), std::string::npos) << r.out;
  r = sh(kNoKvm + kVmm + " --bin " + write_file("t3", "\xf4"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no such device"), std::string::npos) << r.out;
}

}  // namespace
