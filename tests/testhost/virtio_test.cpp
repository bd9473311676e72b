// virtio devices seen from a booted guest: bytes must survive the round trip, checked with
// checksums computed on both sides.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/testhost/testhost.h"

namespace husk {
namespace {

constexpr int kTesthostBroken = 125;

// An 8 MiB image whose first MiB the host fills with a known pattern.
const std::string kMakeDisk =
    "dd if=/dev/zero of=/tmp/disk.img bs=1048576 count=8 2>/dev/null\n"
    "yes host-wrote-this | head -c 1048576 | dd of=/tmp/disk.img conv=notrunc 2>/dev/null\n"
    "echo HOST_MD5_0=$(head -c 1048576 /tmp/disk.img | md5sum | cut -d' ' -f1)\n";
const std::string kReadBack =
    "echo HOST_MD5_1=$(dd if=/tmp/disk.img bs=65536 skip=16 count=16 2>/dev/null | md5sum | cut -d' ' -f1)\n";

TEST(VirtioBlk, GuestReadsHostDataAndHostReadsGuestData) {
  auto r = testhost::run(kMakeDisk + "\"$HUSK_VMM\" --kernel \"$HUSK_KERNEL\" --initrd \"$HUSK_INITRD\" "
                         "--blk /tmp/disk.img --append husk_mode=blk\n"
                         "echo VMM_EXIT=$?\n" + kReadBack);
  ASSERT_NE(r.exit_code, kTesthostBroken) << r.output;
  EXPECT_EQ(r.value("GUEST_BLK_SECTORS"), "16384") << r.output;
  ASSERT_FALSE(r.value("HOST_MD5_0").empty()) << r.output;
  EXPECT_EQ(r.value("GUEST_MD5_0"), r.value("HOST_MD5_0")) << r.output;
  EXPECT_EQ(r.value("GUEST_WRITE"), "ok") << r.output;
  ASSERT_FALSE(r.value("GUEST_MD5_1").empty()) << r.output;
  EXPECT_EQ(r.value("HOST_MD5_1"), r.value("GUEST_MD5_1")) << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

TEST(VirtioBlk, RateLimitedDiskServesEveryRequest) {
  // 512 KiB/s and 200 requests/s: the 2 MiB the guest moves must wait for tokens (timers on the
  // event loop) and still arrive intact.
  auto r = testhost::run(kMakeDisk + "\"$HUSK_VMM\" --kernel \"$HUSK_KERNEL\" --initrd \"$HUSK_INITRD\" "
                         "--blk /tmp/disk.img,bw=524288,iops=200 --append husk_mode=blk\n"
                         "echo VMM_EXIT=$?\n" + kReadBack);
  ASSERT_NE(r.exit_code, kTesthostBroken) << r.output;
  EXPECT_EQ(r.value("GUEST_MD5_0"), r.value("HOST_MD5_0")) << r.output;
  EXPECT_EQ(r.value("GUEST_WRITE"), "ok") << r.output;
  EXPECT_EQ(r.value("HOST_MD5_1"), r.value("GUEST_MD5_1")) << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

TEST(VirtioBlk, SyncedDataSurvivesKillingTheVmm) {
  auto r = testhost::run(
      kMakeDisk +
      "\"$HUSK_VMM\" --kernel \"$HUSK_KERNEL\" --initrd \"$HUSK_INITRD\" --blk /tmp/disk.img "
      "--append husk_mode=blk-sync >/tmp/out 2>&1 &\n"
      "pid=$!\n"
      "wait_for 60 'the guest to sync its writes' grep -q GUEST_SYNCED /tmp/out\n"
      "kill -9 $pid; wait $pid\n"
      "echo KILLED_STATUS=$?\n"
      "cat /tmp/out\n" + kReadBack);
  ASSERT_NE(r.exit_code, kTesthostBroken) << r.output;
  EXPECT_EQ(r.value("GUEST_SYNCED"), "1") << r.output;
  EXPECT_EQ(r.value("KILLED_STATUS"), "137") << r.output;
  ASSERT_FALSE(r.value("GUEST_MD5_1").empty()) << r.output;
  EXPECT_EQ(r.value("HOST_MD5_1"), r.value("GUEST_MD5_1")) << r.output;
}

TEST(VirtioBlk, ReadOnlyDiskRefusesWrites) {
  auto r = testhost::run(kMakeDisk + "\"$HUSK_VMM\" --kernel \"$HUSK_KERNEL\" --initrd \"$HUSK_INITRD\" "
                         "--blk /tmp/disk.img,ro --append husk_mode=blk\n"
                         "echo VMM_EXIT=$?\n" + kReadBack +
                         "echo HOST_ZERO_MD5=$(head -c 1048576 /dev/zero | md5sum | cut -d' ' -f1)\n");
  ASSERT_NE(r.exit_code, kTesthostBroken) << r.output;
  EXPECT_EQ(r.value("GUEST_MD5_0"), r.value("HOST_MD5_0")) << r.output;
  EXPECT_EQ(r.value("GUEST_WRITE"), "failed") << r.output;
  EXPECT_EQ(r.value("HOST_MD5_1"), r.value("HOST_ZERO_MD5")) << r.output;  // untouched
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

TEST(VirtioRng, GuestReadsOneMebibyteOfEntropy) {
  auto r = testhost::run("\"$HUSK_VMM\" --kernel \"$HUSK_KERNEL\" --initrd \"$HUSK_INITRD\" --rng "
                         "--append husk_mode=rng\necho VMM_EXIT=$?\n");
  ASSERT_NE(r.exit_code, kTesthostBroken) << r.output;
  EXPECT_NE(r.value("GUEST_RNG_CURRENT").find("virtio_rng"), std::string::npos) << r.output;
  EXPECT_EQ(r.value("GUEST_RNG_BYTES"), "1048576") << r.output;
  // Random bytes do not compress: gzip output is not smaller than its input.
  EXPECT_GE(std::atol(r.value("GUEST_RNG_GZIP_BYTES").c_str()), 1048576) << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

}  // namespace
}  // namespace husk

namespace husk {
namespace {

TEST(VirtioNet, GuestReachesTheHostOverATap) {
  auto r = testhost::run(
      "tunctl -t husktap0 >/dev/null && ip link set husktap0 up && ip addr add 172.30.0.1/24 dev husktap0\n"
      "yes host-sent-this | head -c 262144 > /tmp/p\n"
      "echo HOST_SENT_MD5=$(md5sum < /tmp/p | cut -d' ' -f1)\n"
      "nc -l -p 5000 -e cat /tmp/p &\n"
      "nc -l -p 5001 -e sh -c 'cat > /tmp/back' &\n"
      "back=$!\n"
      "\"$HUSK_VMM\" --kernel \"$HUSK_KERNEL\" --initrd \"$HUSK_INITRD\" --net husktap0,06:aa:bb:cc:dd:01 "
      "--append husk_mode=net\n"
      "echo VMM_EXIT=$?\n"
      "wait $back\n"
      "echo HOST_GOT_BYTES=$(wc -c < /tmp/back)\n"
      "echo HOST_GOT_MD5=$(md5sum < /tmp/back | cut -d' ' -f1)\n");
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("GUEST_MAC"), "06:aa:bb:cc:dd:01") << r.output;
  EXPECT_EQ(r.value("GUEST_PING"), "ok") << r.output;
  EXPECT_EQ(r.value("GUEST_GOT_BYTES"), "262144") << r.output;
  ASSERT_FALSE(r.value("HOST_SENT_MD5").empty()) << r.output;
  EXPECT_EQ(r.value("GUEST_GOT_MD5"), r.value("HOST_SENT_MD5")) << r.output;
  // Checksum and TSO offloads negotiated both ways, and the bytes intact through them.
  EXPECT_EQ(r.value("GUEST_NET_OFFLOADS"), "1111") << r.output;
  EXPECT_EQ(r.value("HOST_GOT_BYTES"), "262144") << r.output;
  EXPECT_EQ(r.value("HOST_GOT_MD5"), r.value("HOST_SENT_MD5")) << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

}  // namespace
}  // namespace husk

namespace husk {
namespace {

TEST(VirtioVsock, ManyParallelStreamsBothWaysWithLargeTransfers) {
  // Host -> guest: 8 streams of 1 MiB through "CONNECT 1234" (retried until the guest listens,
  // which also exercises the refusal path); then guest -> host: 8 streams of 1 MiB to PATH_5000.
  // Every byte is echoed back and compared.
  auto r = testhost::run(
      "husk-vsock-test host-echo /tmp/v.sock_5000 &\n"
      "\"$HUSK_VMM\" --kernel \"$HUSK_KERNEL\" --initrd \"$HUSK_INITRD\" --mem 512 --vsock 3,/tmp/v.sock "
      "--append husk_mode=vsock "
      ">/tmp/out 2>&1 &\n"
      "vmm=$!\n"
      "husk-vsock-test host-client /tmp/v.sock 1234 8 1048576\n"
      "wait_pid 200 $vmm husk-vmm\necho VMM_EXIT=$?\ncat /tmp/out\n",
      "--timeout 280");
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("HOST_CLIENT_OK"), "8") << r.output;
  EXPECT_EQ(r.value("GUEST_ECHO_DONE"), "1") << r.output;
  EXPECT_EQ(r.value("GUEST_CLIENT_OK"), "8") << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

}  // namespace
}  // namespace husk

namespace husk {
namespace {

TEST(VirtioFs, GuestMountsAHostDirectoryReadsAndWrites) {
  auto r = testhost::run(
      "mkdir -p /tmp/share && echo hello-from-the-host > /tmp/share/hello.txt\n"
      "head -c 6000000 /dev/urandom > /tmp/share/big.bin\n"
      "echo HOST_BIG_MD5=$(md5sum < /tmp/share/big.bin | cut -d' ' -f1)\n"
      "/usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs.sock -o source=/tmp/share -o cache=none "
      "-o sandbox=chroot >/tmp/vfsd.log 2>&1 &\n"
      "wait_for 10 'the socket of virtiofsd' test -S /tmp/vfs.sock\n"
      "\"$HUSK_VMM\" --kernel \"$HUSK_KERNEL\" --initrd \"$HUSK_INITRD\" --fs hostshare,/tmp/vfs.sock "
      "--append husk_mode=fs >/tmp/vmm.out 2>&1 &\n"
      "vmm=$!\n"
      // What virtiofsd maps of husk-vmm's: the bounce area (4 MiB + 2 ring pages), no guest RAM.
      // It is set up at the guest's first request; the guest's console goes to a file meanwhile,
      // so its lines and ours do not interleave.
      "wait_for 60 'virtiofsd mapping shared memory' sh -c 'grep -q memfd: /proc/$(pidof virtiofsd | cut -d\" \" -f1)/maps'\n"
      "for p in $(pidof virtiofsd); do grep memfd: /proc/$p/maps; done | while read -r range _ _ _ _ name _; do "
      "echo \"$name:$((0x${range#*-} - 0x${range%-*}))\"; done | sort -u > /tmp/backend-maps\n"
      "echo BACKEND_MAPS=$(cat /tmp/backend-maps)\n"
      "echo BACKEND_MAP_KINDS=$(wc -l < /tmp/backend-maps)\n"
      "wait $vmm\n"
      "echo VMM_EXIT=$?\n"
      "cat /tmp/vmm.out\n"
      "echo HOST_SEES=$(cat /tmp/share/from-guest.txt)\n"
      "echo HOST_COPY_MD5=$(md5sum < /tmp/share/big-copy.bin | cut -d' ' -f1)\n"
      "cat /tmp/vfsd.log | tail -5\n",
      "--add /usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd");
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("GUEST_FS_READ"), "hello-from-the-host") << r.output;
  EXPECT_EQ(r.value("GUEST_FS_WRITE"), "ok") << r.output;
  EXPECT_EQ(r.value("HOST_SEES"), "written-by-the-guest") << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
  // 6 MB through requests of up to a megabyte, each way, byte for byte.
  EXPECT_EQ(r.value("HOST_BIG_MD5").size(), 32u) << r.output;
  EXPECT_EQ(r.value("GUEST_BIG_MD5"), r.value("HOST_BIG_MD5")) << r.output;
  EXPECT_EQ(r.value("HOST_COPY_MD5"), r.value("HOST_BIG_MD5")) << r.output;
  // The backend maps one memfd of husk-vmm's: the bounce area, not the guest's 256 MiB.
  EXPECT_EQ(r.value("BACKEND_MAPS"), "/memfd:husk-fs-bounce:4202496") << r.output;
  EXPECT_EQ(r.value("BACKEND_MAP_KINDS"), "1") << r.output;
}

}  // namespace
}  // namespace husk
