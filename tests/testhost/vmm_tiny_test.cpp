// husk-vmm running a guest on real KVM, without Linux: a 7-byte guest that resets through the
// i8042. Any KVM runs it (PVM included), so run.sh --any-kvm runs it on this host's /dev/kvm
// where there is one and in the test host where there is none.
#include <gtest/gtest.h>

#include "tests/testhost/testhost.h"

namespace husk {
namespace {

// mov al,0xfe; out 0xf4,al; out 0x64,al; hlt: the i8042 reset ends the VM with status 0.
const std::string kTiny = R"SH(
printf '\260\376\346\364\346\144\364' >/tmp/tiny.bin
)SH";

TEST(VmmTiny, GuestRunsOnKvmAndResetsCleanly) {
  auto r = testhost::run(kTiny + R"SH(
HUSK_EXEC_T0_NS= "$HUSK_VMM" --bin /tmp/tiny.bin --console none --mem 64
echo VMM_EXIT=$?
)SH", "--any-kvm");
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

TEST(VmmTiny, ReportsTimingWhenMeasured) {
  auto r = testhost::run(kTiny + R"SH(
HUSK_EXEC_T0_NS=1 "$HUSK_VMM" --bin /tmp/tiny.bin --console none 2>/tmp/err.log
echo VMM_EXIT=$?
grep -q 'timing: first KVM_RUN at [0-9]* us after exec' /tmp/err.log && echo TIMING=1
cat /tmp/err.log
)SH", "--any-kvm");
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
  EXPECT_EQ(r.value("TIMING"), "1") << r.output;
}

}  // namespace
}  // namespace husk
