// Snapshots: husk-vmm pauses a booted guest, writes its state and memory, and new husk-vmm
// processes restore copies of it that carry on where it stopped, on new backends.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "tests/testhost/testhost.h"

namespace husk {
namespace {

constexpr int kTesthostBroken = 125;

long num(const std::string& s) { return std::strtol(s.c_str(), nullptr, 10); }

const std::string kAdds = "--add /usr/bin/curl:/husk/bin/curl";
const std::string kAgentAdds =
    kAdds +
    " --add /usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd"
    " --add " HUSK_BUILD_DIR "/images/agent-initramfs.cpio:/husk/images/agent-initramfs.cpio"
    " --add " HUSK_BUILD_DIR "/images/test-bundle:/husk/images/test-bundle"
    " --add " HUSK_BUILD_DIR "/guest-agent/husk-agentctl:/husk/bin/husk-agentctl";

// `api SOCKET METHOD PATH [JSON]` prints the body and " HTTP=<code>"; `ms` is uptime in ms.
const std::string kHelpers = R"SH(
api() { curl -s --unix-socket "$1" -X "$2" "http://localhost$3" ${4:+-H 'Content-Type: application/json' -d "$4"} -w " HTTP=%{http_code}\n"; }
ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
snap() { api "$1" PUT /snapshot/create "{\"snapshot_path\":\"$2\",\"mem_file_path\":\"$3\"}"; }
)SH";

// Boots the counter guest with a disk, entropy and vsock, and snapshots it at its third tick.
const std::string kBootAndSnapshot = kHelpers + R"SH(
dd if=/dev/zero of=/tmp/disk.img bs=1M count=4 2>/dev/null
"$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 128 --api /tmp/api0.sock --blk /tmp/disk.img --rng \
  --vsock 3,/tmp/v0.sock --console /tmp/con0 --append husk_mode=counter 2>/tmp/vmm0.log &
vmm=$!
wait_for 120 "the guest to count" grep -q TICK=2 /tmp/con0
echo "SNAPSHOT_WHILE_RUNNING=$(snap /tmp/api0.sock /tmp/s.state /tmp/s.mem)"
echo "PAUSE=$(api /tmp/api0.sock PATCH /vm '{"state":"Paused"}')"
echo "STATE=$(api /tmp/api0.sock GET /vm)"
t0=$(ms)
echo "SNAPSHOT=$(snap /tmp/api0.sock /tmp/s.state /tmp/s.mem)"
echo "SNAPSHOT_MS=$(($(ms) - t0))"
echo "LAST_TICK=$(grep -o 'TICK=[0-9]*' /tmp/con0 | tail -1 | cut -d= -f2)"
echo "RESUME=$(api /tmp/api0.sock PATCH /vm '{"state":"Resumed"}')"
n=$(grep -c TICK= /tmp/con0)
wait_for 60 "the original to count on" sh -c "[ \$(grep -c TICK= /tmp/con0) -gt $n ]" && echo ORIGINAL_CONTINUES=1
kill $vmm; wait $vmm
echo "GUEST_BOOT_ID=$(grep -o 'GUEST_BOOT_ID=.*' /tmp/con0 | cut -d= -f2)"
echo "MARKER_MD5=$(yes snapshot-marker | head -c 65536 | md5sum | cut -c1-12)"
)SH";

TEST(Snapshot, FiveCopiesRestoredFromOneSnapshotCarryOnAndShareMemory) {
  auto r = testhost::run(kBootAndSnapshot + R"SH(
# Five copies at once, each on its own disk file (a copy of the snapshotted one), vsock socket
# and API socket.
for n in 1 2 3 4 5; do
  cp /tmp/disk.img /tmp/disk$n.img
  "$HUSK_VMM" --restore /tmp/s.state,/tmp/s.mem --api /tmp/api$n.sock --blk /tmp/disk$n.img --rng \
    --vsock 3,/tmp/v$n.sock --console /tmp/con$n 2>/tmp/vmm$n.log &
  eval pid$n=$!
done
for n in 1 2 3 4 5; do
  wait_for 120 "copy $n to tick twice" sh -c "[ \$(grep -c TICK= /tmp/con$n) -ge 3 ]"
done
for n in 1 2 3 4 5; do
  eval pid=\$pid$n
  echo "COPY${n}_FIRST_TICK=$(grep -o 'TICK=[0-9]*' /tmp/con$n | head -1 | cut -d= -f2)"
  echo "COPY${n}_TICKS=$(grep -c TICK= /tmp/con$n)"
  # Whole fields only: the copy is still writing its console, its last line may be half there.
  echo "COPY${n}_BOOT_IDS=$(grep -o 'BOOT=[^ ]* DISK=' /tmp/con$n | sort -u | cut -d= -f2 | cut -d' ' -f1 | tr '\n' ' ')"
  echo "COPY${n}_DISKS=$(grep -oE 'DISK=[0-9a-f]{12}' /tmp/con$n | sort -u | cut -d= -f2 | tr '\n' ' ')"
  echo "COPY${n}_STATE=$(api /tmp/api$n.sock GET /vm)"
  # Memory: what this husk-vmm maps (Rss) against its share of it (Pss): the snapshot's pages
  # are shared by all five.
  echo "COPY${n}_RSS_KB=$(awk '/^Rss:/{print $2}' /proc/$pid/smaps_rollup)"
  echo "COPY${n}_PSS_KB=$(awk '/^Pss:/{print $2}' /proc/$pid/smaps_rollup)"
done
for n in 1 2 3 4 5; do eval kill \$pid$n; done
wait
cat /tmp/vmm1.log
)SH",
                         kAdds + " --mem 2048");
  ASSERT_NE(r.exit_code, kTesthostBroken) << r.output;
  EXPECT_EQ(r.value("SNAPSHOT_WHILE_RUNNING").find("pause the VM first") != std::string::npos, true) << r.output;
  EXPECT_EQ(r.value("PAUSE"), " HTTP=204") << r.output;
  EXPECT_EQ(r.value("STATE"), "{\"state\":\"Paused\"} HTTP=200") << r.output;
  EXPECT_EQ(r.value("SNAPSHOT"), " HTTP=204") << r.output;
  EXPECT_EQ(r.value("RESUME"), " HTTP=204") << r.output;
  EXPECT_EQ(r.value("ORIGINAL_CONTINUES"), "1") << r.output;
  const std::string boot_id = r.value("GUEST_BOOT_ID");
  ASSERT_FALSE(boot_id.empty()) << r.output;
  int last = std::stoi(r.value("LAST_TICK").empty() ? "-1" : r.value("LAST_TICK"));
  ASSERT_GE(last, 2) << r.output;
  for (int n = 1; n <= 5; ++n) {
    std::string c = "COPY" + std::to_string(n) + "_";
    // The copy's counter starts where the snapshot stopped: the tick being printed, or the next.
    std::string first = r.value(c + "FIRST_TICK");
    ASSERT_FALSE(first.empty()) << r.output;
    EXPECT_GE(std::stoi(first), last) << r.output;
    EXPECT_LE(std::stoi(first), last + 1) << r.output;
    EXPECT_GE(std::stoi(r.value(c + "TICKS")), 3) << r.output;
    EXPECT_EQ(r.value(c + "BOOT_IDS"), boot_id + " ") << r.output;         // the same boot
    EXPECT_EQ(r.value(c + "DISKS"), r.value("MARKER_MD5") + " ") << r.output;  // read from its disk
    EXPECT_EQ(r.value(c + "STATE"), "{\"state\":\"Running\"} HTTP=200") << r.output;
    long rss = num(r.value(c + "RSS_KB")), pss = num(r.value(c + "PSS_KB"));
    EXPECT_GT(rss, 0) << r.output;
    EXPECT_LT(pss, rss) << "copy " << n << " shares nothing\n" << r.output;
  }
  std::printf("snapshot of a 128 MiB guest: %s ms (emulated); copy 1: Rss %s KiB, Pss %s KiB\n",
              r.value("SNAPSHOT_MS").c_str(), r.value("COPY1_RSS_KB").c_str(), r.value("COPY1_PSS_KB").c_str());
}

TEST(Snapshot, DamagedOrMismatchedSnapshotsAreRefusedClearly) {
  auto r = testhost::run(kBootAndSnapshot + R"SH(
restore() {  # restore STATE MEM [devices...]: prints the exit status and the error line
  s=$1 m=$2; shift 2
  timeout 60 "$HUSK_VMM" --restore "$s,$m" --console none "$@" >/tmp/out 2>&1
  echo "$? $(grep -o 'error: .*' /tmp/out | head -1)"
}
devs="--blk /tmp/disk.img --rng --vsock 3,/tmp/v9.sock"
head -c 1000 /tmp/s.state >/tmp/trunc.state
echo "TRUNCATED=$(restore /tmp/trunc.state /tmp/s.mem $devs)"
cp /tmp/s.state /tmp/bad.state
printf 'X' | dd of=/tmp/bad.state bs=1 seek=2000 conv=notrunc 2>/dev/null
echo "CORRUPTED=$(restore /tmp/bad.state /tmp/s.mem $devs)"
cp /tmp/s.state /tmp/ver.state
printf '\143' | dd of=/tmp/ver.state bs=1 seek=8 conv=notrunc 2>/dev/null
echo "VERSION=$(restore /tmp/ver.state /tmp/s.mem $devs)"
echo "NOT_A_SNAPSHOT=$(restore /tmp/con0 /tmp/s.mem $devs)"
cp /tmp/s.mem /tmp/short.mem && truncate -s $(($(stat -c %s /tmp/s.mem) - 4096)) /tmp/short.mem
echo "MEM_SIZE=$(restore /tmp/s.state /tmp/short.mem $devs)"
echo "DEVICES=$(restore /tmp/s.state /tmp/s.mem --rng --vsock 3,/tmp/v9.sock)"
echo "ORDER=$(restore /tmp/s.state /tmp/s.mem --blk /tmp/disk.img --blk /tmp/disk.img,ro --vsock 3,/tmp/v9.sock)"
echo "MISSING=$(restore /tmp/s.state /tmp/nothing.mem $devs)"
echo "KERNEL_TOO=$(restore /tmp/s.state /tmp/s.mem --kernel "$HUSK_KERNEL" $devs)"
# API requests that must be refused with a message.
"$HUSK_VMM" --restore /tmp/s.state,/tmp/s.mem --api /tmp/api9.sock $devs --console none 2>/dev/null &
pid=$!
wait_for 30 "the API socket" test -S /tmp/api9.sock
echo "BAD_JSON=$(api /tmp/api9.sock PATCH /vm '{"state":')"
echo "BAD_STATE=$(api /tmp/api9.sock PATCH /vm '{"state":"Frozen"}')"
echo "NO_PATHS=$(api /tmp/api9.sock PUT /snapshot/create '{"snapshot_path":"/tmp/x"}')"
echo "UNKNOWN=$(api /tmp/api9.sock GET /machine-config)"
echo "WRONG_METHOD=$(api /tmp/api9.sock DELETE /vm)"
echo "HUGE=$(head -c 100000 /dev/zero | tr '\0' a | curl -s --unix-socket /tmp/api9.sock -X PATCH http://localhost/vm --data-binary @- -w ' HTTP=%{http_code}')"
echo "STILL_ANSWERS=$(api /tmp/api9.sock GET /vm)"
echo "LOAD_TO_RUNNING=$(api /tmp/api9.sock PUT /snapshot/load '{"snapshot_path":"/tmp/s.state","mem_file_path":"/tmp/s.mem"}')"
kill $pid; wait $pid
# Firecracker's way: a husk-vmm with its devices and --api only, loaded through the API. A load
# that fails (no memory file) leaves it waiting; the good one comes up paused (no resume_vm).
cp /tmp/disk.img /tmp/diskl.img
"$HUSK_VMM" --api /tmp/load.sock --blk /tmp/diskl.img --rng --vsock 3,/tmp/vl.sock --console /tmp/conl 2>/tmp/vmml.log &
pid=$!
wait_for 30 "the API socket" test -S /tmp/load.sock
echo "NOT_STARTED=$(api /tmp/load.sock GET /vm)"
echo "EARLY_PAUSE=$(api /tmp/load.sock PATCH /vm '{"state":"Paused"}')"
echo "EARLY_METRICS=$(api /tmp/load.sock GET /metrics)"
echo "LOAD_MISSING=$(api /tmp/load.sock PUT /snapshot/load '{"snapshot_path":"/tmp/s.state","mem_backend":{"backend_path":"/tmp/nothing.mem","backend_type":"File"}}')"
echo "LOAD=$(api /tmp/load.sock PUT /snapshot/load '{"snapshot_path":"/tmp/s.state","mem_backend":{"backend_path":"/tmp/s.mem","backend_type":"File"}}')"
echo "LOADED_STATE=$(api /tmp/load.sock GET /vm)"
sleep 3
echo "TICKS_WHILE_PAUSED=$(grep -c TICK= /tmp/conl)"
echo "LOAD_AGAIN=$(api /tmp/load.sock PUT /snapshot/load '{"snapshot_path":"/tmp/s.state","mem_file_path":"/tmp/s.mem"}')"
echo "LOADED_RESUME=$(api /tmp/load.sock PATCH /vm '{"state":"Resumed"}')"
wait_for 120 "the loaded copy to tick" sh -c "[ \$(grep -c TICK= /tmp/conl) -ge 2 ]" && echo LOADED_COUNTS=1
echo "LOADED_DISK=$(grep -oE 'DISK=[0-9a-f]{12}' /tmp/conl | sort -u | cut -d= -f2 | tr '\n' ' ')"
m=$(api /tmp/load.sock GET /metrics)
echo "METRICS_IO_EXITS=$(echo "$m" | sed -n 's/.*"io_exits":\([0-9]*\).*/\1/p')"
echo "METRICS_DEVICES=$(echo "$m" | grep -o '"type":"[a-z]*"' | cut -d'"' -f4 | tr '\n' ' ')"
echo "METRICS_HTTP=$(echo "$m" | grep -o 'HTTP=[0-9]*')"
kill $pid; wait $pid
[ -e /tmp/load.sock ] || echo LOAD_SOCKET_REMOVED=1
)SH",
                         kAdds);
  ASSERT_NE(r.exit_code, kTesthostBroken) << r.output;
  ASSERT_EQ(r.value("SNAPSHOT"), " HTTP=204") << r.output;
  auto refused = [&](const char* key, const char* words) {
    std::string v = r.value(key);
    EXPECT_EQ(v.substr(0, 2), "1 ") << key << "\n" << r.output;
    EXPECT_NE(v.find(words), std::string::npos) << key << ": " << v << "\n" << r.output;
  };
  refused("TRUNCATED", "truncated");
  refused("CORRUPTED", "corrupted (checksum mismatch)");
  refused("VERSION", "format version 99");
  refused("NOT_A_SNAPSHOT", "not a husk snapshot");
  refused("MEM_SIZE", "the memory file holds");
  refused("DEVICES", "snapshot device mismatch");
  refused("ORDER", "snapshot device mismatch");
  refused("MISSING", "cannot open the memory file");
  EXPECT_NE(r.value("KERNEL_TOO").find("excludes"), std::string::npos) << r.output;
  EXPECT_NE(r.value("BAD_JSON").find("HTTP=400"), std::string::npos) << r.output;
  EXPECT_NE(r.value("BAD_JSON").find("fault_message"), std::string::npos) << r.output;
  EXPECT_NE(r.value("BAD_STATE").find("HTTP=400"), std::string::npos) << r.output;
  EXPECT_NE(r.value("NO_PATHS").find("mem_file_path"), std::string::npos) << r.output;
  EXPECT_NE(r.value("UNKNOWN").find("HTTP=404"), std::string::npos) << r.output;
  EXPECT_NE(r.value("WRONG_METHOD").find("HTTP=405"), std::string::npos) << r.output;
  // Refused at the limit: a 400, or the connection closed under curl while it was still sending.
  EXPECT_TRUE(r.value("HUGE").find("HTTP=400") != std::string::npos || r.value("HUGE").find("HTTP=000") != std::string::npos)
      << r.output;
  EXPECT_EQ(r.value("STILL_ANSWERS"), "{\"state\":\"Running\"} HTTP=200") << r.output;
  EXPECT_NE(r.value("LOAD_TO_RUNNING").find("already runs a VM"), std::string::npos) << r.output;

  EXPECT_EQ(r.value("NOT_STARTED"), "{\"state\":\"Not started\"} HTTP=200") << r.output;
  EXPECT_NE(r.value("EARLY_PAUSE").find("load a snapshot first"), std::string::npos) << r.output;
  EXPECT_NE(r.value("LOAD_MISSING").find("cannot open the memory file"), std::string::npos) << r.output;
  EXPECT_NE(r.value("LOAD_MISSING").find("HTTP=400"), std::string::npos) << r.output;
  EXPECT_EQ(r.value("LOAD"), " HTTP=204") << r.output;
  EXPECT_EQ(r.value("LOADED_STATE"), "{\"state\":\"Paused\"} HTTP=200") << r.output;
  EXPECT_EQ(r.value("TICKS_WHILE_PAUSED"), "0") << r.output;
  EXPECT_NE(r.value("LOAD_AGAIN").find("already runs a VM"), std::string::npos) << r.output;
  EXPECT_EQ(r.value("LOADED_RESUME"), " HTTP=204") << r.output;
  EXPECT_EQ(r.value("LOADED_COUNTS"), "1") << r.output;
  EXPECT_EQ(r.value("LOADED_DISK"), r.value("MARKER_MD5") + " ") << r.output;  // the snapshot's disk contents
  EXPECT_EQ(r.value("LOAD_SOCKET_REMOVED"), "1") << r.output;
  // GET /metrics: the loaded VM's counters (its console ticks are port I/O exits), devices in
  // slot order; none before a VM exists.
  EXPECT_NE(r.value("EARLY_METRICS").find("HTTP=400"), std::string::npos) << r.output;
  EXPECT_EQ(r.value("METRICS_HTTP"), "HTTP=200") << r.output;
  EXPECT_GT(num(r.value("METRICS_IO_EXITS")), 0) << r.output;
  EXPECT_EQ(r.value("METRICS_DEVICES"), "block rng vsock ") << r.output;
}

TEST(Snapshot, AgentCopiesAnswerRunContainersWithFreshRandomnessAndTheHostsClock) {
  auto r = testhost::run(kHelpers + R"SH(
mkdir -p /tmp/share && cp -a "$HUSK_ROOT/images/test-bundle/rootfs" /tmp/share/rootfs
vfs() {
  /usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs$1.sock -o source=/tmp/share -o cache=none -o sandbox=chroot >/tmp/vfsd$1.log 2>&1 &
  wait_for 10 "virtiofsd $1" test -S /tmp/vfs$1.sock
}
ctl() { n=$1; shift; husk-agentctl --address hvsock:/tmp/v$n.sock:1024 --timeout-ms 120000 "$@"; }
mkdir -p /tmp/b
sed 's|"args": \["sh"\]|"args": ["sh", "-c", "echo RAND=$(head -c 16 /dev/urandom \| md5sum \| cut -c1-12) DATE=$(date +%s)"]|' \
  "$HUSK_ROOT/images/test-bundle/config.json" >/tmp/b/config.json
vfs 0
"$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_ROOT/images/agent-initramfs.cpio" --mem 256 --vcpus 1 \
  --api /tmp/api0.sock --vsock 3,/tmp/v0.sock --fs share,/tmp/vfs0.sock >/tmp/vmm0.log 2>&1 &
vmm=$!
echo "ORIGINAL_BOOT_ID=$(ctl 0 details | grep -o '"bootId": *"[^"]*"' | cut -d'"' -f4)"
api /tmp/api0.sock PATCH /vm '{"state":"Paused"}' >/dev/null
echo "SNAPSHOT=$(snap /tmp/api0.sock /tmp/s.state /tmp/s.mem)"
kill $vmm; wait $vmm
for n in 1 2; do
  vfs $n
  "$HUSK_VMM" --restore /tmp/s.state,/tmp/s.mem --api /tmp/api$n.sock --vsock 3,/tmp/v$n.sock --fs share,/tmp/vfs$n.sock \
    >/tmp/vmm$n.log 2>&1 &
  eval pid$n=$!
  echo "COPY${n}_BOOT_ID=$(ctl $n details | grep -o '"bootId": *"[^"]*"' | cut -d'"' -f4)"
  ctl $n restored && echo "COPY${n}_RESTORED=ok"
  echo "COPY${n}_HOST_DATE=$(date +%s)"
  echo "COPY${n}_$(ctl $n run --id c$n --bundle /tmp/b --virtiofs share --subpath rootfs | grep RAND=)"
done
# The share is mounted now: a snapshot would lose the FUSE session, so it is refused.
api /tmp/api1.sock PATCH /vm '{"state":"Paused"}' >/dev/null
echo "MOUNTED_SNAPSHOT=$(snap /tmp/api1.sock /tmp/s2.state /tmp/s2.mem)"
api /tmp/api1.sock PATCH /vm '{"state":"Resumed"}' >/dev/null
echo "AFTER_REFUSAL=$(ctl 1 version)"
for n in 1 2; do
  ctl $n destroy-sandbox
  eval wait_pid 100 \$pid$n husk-vmm
  echo "COPY${n}_VMM_EXIT=$?"
done
)SH",
                         kAgentAdds);
  ASSERT_NE(r.exit_code, kTesthostBroken) << r.output;
  ASSERT_EQ(r.value("SNAPSHOT"), " HTTP=204") << r.output;
  const std::string boot_id = r.value("ORIGINAL_BOOT_ID");
  ASSERT_EQ(boot_id.size(), 36u) << r.output;
  std::set<std::string> rands;
  for (int n = 1; n <= 2; ++n) {
    std::string c = "COPY" + std::to_string(n) + "_";
    EXPECT_EQ(r.value(c + "BOOT_ID"), boot_id) << r.output;
    EXPECT_EQ(r.value(c + "RESTORED"), "ok") << r.output;
    // "RAND=<hex> DATE=<seconds>"
    std::string line = r.value(c + "RAND");
    auto space = line.find(" DATE=");
    ASSERT_NE(space, std::string::npos) << r.output;
    rands.insert(line.substr(0, space));
    long guest = std::stol(line.substr(space + 6)), host = std::stol(r.value(c + "HOST_DATE"));
    EXPECT_LE(std::labs(guest - host), 60) << "the guest's clock was not set\n" << r.output;
    EXPECT_EQ(r.value(c + "VMM_EXIT"), "0") << r.output;
  }
  EXPECT_EQ(rands.size(), 2u) << "both copies drew the same random numbers\n" << r.output;
  EXPECT_NE(r.value("MOUNTED_SNAPSHOT").find("live FUSE session"), std::string::npos) << r.output;
  EXPECT_EQ(r.value("AFTER_REFUSAL"), "agent 0.1.0 api 1") << r.output;  // the copy runs on
}

}  // namespace
}  // namespace husk
