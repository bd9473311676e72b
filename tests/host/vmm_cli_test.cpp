// husk-vmm as a process on this machine's own /dev/kvm (PVM or hardware): the tiny-guest path,
// exit statuses, and the error a user gets for bad input.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
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

std::string write_file(const std::string& name, const std::string& bytes) {
  std::string path = std::string(::testing::TempDir()) + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

bool is_pvm() {
  struct stat st;
  return stat("/sys/module/kvm_pvm", &st) == 0;
}

TEST(VmmCli, TinyGuestRunsOnThisHostsKvmAndResetsCleanly) {
  // mov al,0xfe; out 0xf4,al; out 0x64,al; hlt: the i8042 reset ends the VM with status 0.
  auto bin = write_file("tiny.bin", "\xb0\xfe\xe6\xf4\xe6\x64\xf4");
  auto r = sh("HUSK_EXEC_T0_NS= " + kVmm + " --bin " + bin + " --console none --mem 64");
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(VmmCli, ReportsTimingWhenMeasured) {
  auto bin = write_file("tiny.bin", "\xb0\xfe\xe6\x64\xf4");
  auto r = sh("HUSK_EXEC_T0_NS=1 " + kVmm + " --bin " + bin + " --console none");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("timing: first KVM_RUN at"), std::string::npos) << r.out;
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
}

TEST(VmmCli, BrokenKernelFilesGetAClearError) {
  auto missing = sh(kVmm + " --kernel /nonexistent/vmlinux");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("cannot open kernel"), std::string::npos) << missing.out;
  auto not_elf = sh(kVmm + " --kernel " + write_file("bz", std::string(4096, 'M')));
  EXPECT_EQ(not_elf.code, 1);
  EXPECT_NE(not_elf.out.find("not an ELF"), std::string::npos) << not_elf.out;
  std::string head = "\x7f" "ELF\x02\x01\x01";
  head.resize(40, '\0');  // ELF magic, then cut off inside the header
  auto trunc = sh(kVmm + " --kernel " + write_file("trunc", head));
  EXPECT_EQ(trunc.code, 1);
  EXPECT_NE(trunc.out.find("too small"), std::string::npos) << trunc.out;
  auto empty = sh(kVmm + " --kernel " + write_file("empty", ""));
  EXPECT_EQ(empty.code, 1);
  EXPECT_NE(empty.out.find("empty"), std::string::npos) << empty.out;
  auto big_initrd = sh(kVmm + " --bin " + write_file("t2", "\xf4") + " --initrd /dev/null");
  EXPECT_EQ(big_initrd.code, 1);
}

TEST(VmmCli, RefusesToBootLinuxOnPvmWithDirections) {
  if (!is_pvm()) GTEST_SKIP() << "hardware KVM: Linux boots here (covered by the testhost tests)";
  auto r = sh(kVmm + " --kernel " + HUSK_KERNEL_PATH + " --console none");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("PVM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test host"), std::string::npos) << r.out;
}

}  // namespace
