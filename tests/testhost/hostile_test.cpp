// A hostile guest (images/hostile: no Linux, it attacks the devices directly) against husk-vmm
// built with ASan+UBSan, every device attached: the VMM must survive every attack without a
// sanitizer report, stay within a memory bound, keep the console file within its bound, and
// still be there to exit 0 when the guest resets at the end.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/testhost/testhost.h"

namespace husk {
namespace {

TEST(HostileGuest, EveryDeviceSurvivesItsAttacksAndTheVmmExitsCleanly) {
  auto r = testhost::run(R"SH(
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
dd if=/dev/zero of=/tmp/disk.img bs=1048576 count=4 2>/dev/null
tunctl -t hostile0 >/dev/null && ip link set hostile0 up
mkdir -p /tmp/share
timeout 600 /usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs.sock -o source=/tmp/share -o cache=none -o sandbox=chroot >/tmp/vfsd.log 2>&1 &
wait_for 10 "the socket of virtiofsd" test -S /tmp/vfs.sock
husk-bench-clock --marker '' --log /tmp/vmm.log --timeout 400 -- /husk/bin/husk-vmm-asan \
  --kernel /husk/images/husk-hostile.elf --mem 256 --vcpus 1 --blk /tmp/disk.img --rng --net hostile0 \
  --vsock 3,/tmp/v.sock --fs share,/tmp/vfs.sock --console /tmp/console.log --console-limit 262144 | tr ' ' '\n' | sed 's/^/CLOCK_/'
echo CONSOLE_BYTES=$(wc -c </tmp/console.log)
echo DEVICES_ATTACKED=$(grep -c '^HOSTILE: device' /tmp/console.log)
grep -q '^HOSTILE_DONE' /tmp/console.log && echo GUEST_DONE=1
grep -q 'older console output dropped' /tmp/console.log && echo CONSOLE_WRAPPED=1
grep -E '^HOSTILE:' /tmp/console.log
echo '--- husk-vmm-asan stderr:'
head -c 20000 /tmp/vmm.log
)SH", "--timeout 600 --add " HUSK_BUILD_DIR "/vmm/husk-vmm-asan:/husk/bin/husk-vmm-asan "
      "--add " HUSK_BUILD_DIR "/images/husk-hostile.elf:/husk/images/husk-hostile.elf "
      "--add " HUSK_BUILD_DIR "/bench/husk-bench-clock:/husk/bin/husk-bench-clock "
      "--add /usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd");
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("CLOCK_rc"), "0") << r.output;  // the guest's reset, seen by a VMM still standing
  EXPECT_EQ(r.value("GUEST_DONE"), "1") << r.output;
  EXPECT_EQ(r.value("DEVICES_ATTACKED"), "5") << r.output;  // blk, net, rng, fs, vsock
  EXPECT_EQ(r.output.find("ERROR: AddressSanitizer"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("ERROR: LeakSanitizer"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("runtime error:"), std::string::npos) << r.output;
  // The serial flood (512 KiB) went through a 256 KiB console file: wrapped, within its bound.
  EXPECT_EQ(r.value("CONSOLE_WRAPPED"), "1") << r.output;
  EXPECT_LE(std::atoll(r.value("CONSOLE_BYTES").c_str()), 262144) << r.output;
  // Guest RAM the attacks touched plus the VMM under ASan: well below what an unbounded queue
  // or buffer would have grown to.
  long long rss_kib = std::atoll(r.value("CLOCK_maxrss_kib").c_str());
  std::printf("husk-vmm-asan peak RSS under attack: %lld KiB\n", rss_kib);
  EXPECT_GT(rss_kib, 0) << r.output;
  EXPECT_LT(rss_kib, 400 * 1024) << r.output;
}

}  // namespace
}  // namespace husk
