#include "vmm/arch/x86_64/cpuid.h"

#include <gtest/gtest.h>

#include <cstring>

namespace husk::x86 {
namespace {

std::vector<kvm_cpuid_entry2> fake_supported() {
  std::vector<kvm_cpuid_entry2> v;
  auto add = [&](uint32_t f, uint32_t idx, uint32_t flags, uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx) {
    kvm_cpuid_entry2 e{};
    e.function = f, e.index = idx, e.flags = flags, e.eax = eax, e.ebx = ebx, e.ecx = ecx, e.edx = edx;
    v.push_back(e);
  };
  add(0, 0, 0, 0xd, 0, 0, 0);
  add(1, 0, 0, 0x806f8, 0x00000800, 0x7ed8320b, 0x178bfbff);
  add(0xb, 0, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 0, 0, 0);
  add(0xb, 1, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, 0, 0, 0, 0);
  add(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
  add(0x40000001, 0, 0, 0x01007afb, 0, 0, 0);
  add(0x80000008, 0, 0, 0x3030, 0, 0, 0);
  return v;
}

TEST(Cpuid, SetsApicIdCountAndHypervisorBit) {
  auto v = fake_supported();
  setup_cpuid(v, CpuidTopology{3, 4}, CpuidOptions{});
  auto* l1 = find_cpuid(v, 1);
  ASSERT_NE(l1, nullptr);
  EXPECT_EQ(l1->ebx >> 24, 3u);
  EXPECT_EQ((l1->ebx >> 16) & 0xff, 4u);
  EXPECT_EQ(l1->ebx & 0xffff, 0x0800u);  // CLFLUSH size kept
  EXPECT_TRUE(l1->ecx & (1u << 31));
  EXPECT_TRUE(l1->edx & (1u << 28));
  EXPECT_FALSE(l1->ecx & (1u << 24));
}

TEST(Cpuid, TopologyLeavesDescribeOneSocket) {
  auto v = fake_supported();
  setup_cpuid(v, CpuidTopology{2, 4}, CpuidOptions{});
  auto* smt = find_cpuid(v, 0xb, 0);
  auto* core = find_cpuid(v, 0xb, 1);
  ASSERT_TRUE(smt && core);
  EXPECT_EQ(smt->edx, 2u);
  EXPECT_EQ(smt->ebx, 1u);
  EXPECT_EQ(core->eax, 2u);  // 2 bits of APIC id for 4 cores
  EXPECT_EQ(core->ebx, 4u);
  EXPECT_EQ((core->ecx >> 8) & 0xff, 2u);
  EXPECT_EQ(find_cpuid(v, 0x80000008)->ecx & 0xff, 3u);
}

TEST(Cpuid, SingleCpuClearsHtt) {
  auto v = fake_supported();
  setup_cpuid(v, CpuidTopology{0, 1}, CpuidOptions{});
  EXPECT_FALSE(find_cpuid(v, 1)->edx & (1u << 28));
}

TEST(Cpuid, KvmLeavesAndTscFrequency) {
  auto v = fake_supported();
  setup_cpuid(v, CpuidTopology{0, 1}, CpuidOptions{2596114, true});
  auto* hv = find_cpuid(v, 0x40000000);
  ASSERT_NE(hv, nullptr);
  char sig[13] = {};
  std::memcpy(sig, &hv->ebx, 4);
  std::memcpy(sig + 4, &hv->ecx, 4);
  std::memcpy(sig + 8, &hv->edx, 4);
  EXPECT_STREQ(sig, "KVMKVMKVM");
  EXPECT_GE(hv->eax, 0x40000010u);
  auto* timing = find_cpuid(v, 0x40000010);
  ASSERT_NE(timing, nullptr);
  EXPECT_EQ(timing->eax, 2596114u);
  EXPECT_EQ(timing->ebx, 1000000u);
  EXPECT_NE(find_cpuid(v, 0x40000001), nullptr);  // paravirt features kept (kvm-clock)
  EXPECT_TRUE(find_cpuid(v, 1)->ecx & (1u << 24));  // TSC deadline timer
}

TEST(Cpuid, AddsKvmSignatureWhenMissing) {
  std::vector<kvm_cpuid_entry2> v(1);
  v[0].function = 1;
  setup_cpuid(v, CpuidTopology{0, 1}, CpuidOptions{});
  auto* hv = find_cpuid(v, 0x40000000);
  ASSERT_NE(hv, nullptr);
  EXPECT_EQ(std::memcmp(&hv->ebx, "KVMK", 4), 0);
  EXPECT_EQ(hv->eax, 0x40000001u);
}

}  // namespace
}  // namespace husk::x86
