// husk-jailer around husk-vmm with a guest that only halts: what the jail and the seccomp
// filters look like from the host's /proc, and a forbidden system call killing the VMM. No
// Linux guest is needed, so any KVM runs it (this host's PVM included; else the test host).
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/testhost/testhost.h"

namespace husk {
namespace {

// hlt; jmp back: with interrupts off the vCPU sleeps in KVM_RUN until kicked.
// vmm_started JAILER: its child (husk-vmm) has its event loop and both vCPU threads.
const std::string kIdle = R"SH(
# Our threads: the kernel may add workers of its own to a KVM process (kvm-nx-lpage-recovery).
vmm_threads() { for t in /proc/$1/task/*; do [ "$(cat $t/comm)" = husk-vmm ] && echo $t; done; }
vmm_started() {
  c=$(awk '{print $1}' /proc/$1/task/$1/children 2>/dev/null)
  [ -n "$c" ] && [ "$(vmm_threads $c | wc -l)" -ge 3 ]
}
)SH";

const std::string kJailed = kIdle + R"SH(
printf '\364\353\375' >/tmp/idle.bin
mkdir -p /tmp/jail
"$HUSK_JAILER" --uid 31001 --gid 31001 --root /tmp/jail --bind /tmp/idle.bin:/guest.bin --dev /dev/kvm \
  --dev /dev/urandom --rlimit nproc=8 --rlimit nofile=64 -- "$HUSK_VMM" --bin /guest.bin --console none --mem 64 \
  --vcpus 2 --test-forbidden-syscall 2>/tmp/jail.err &
j=$!
wait_for 30 "husk-vmm's threads to start under the jailer" vmm_started $j
v=$(awk '{print $1}' /proc/$j/task/$j/children)
st=$(for t in $(vmm_threads $v); do cat $t/status; done)
echo THREADS=$(vmm_threads $v | wc -l)
echo SECCOMP=$(echo "$st" | grep -cE '^Seccomp:[[:space:]]+2$')
echo NNP=$(echo "$st" | grep -cE '^NoNewPrivs:[[:space:]]+1$')
echo CAPS_ZERO=$(echo "$st" | grep -cE '^Cap(Inh|Prm|Eff|Bnd|Amb):[[:space:]]+0+$')
echo UIDS=$(echo "$st" | awk '/^Uid:/ {print $2 $3 $4 $5}' | sort -u)
echo GIDS=$(echo "$st" | awk '/^Gid:/ {print $2 $3 $4 $5}' | sort -u)
echo ROOT=$(ls /proc/$v/root | xargs | tr ' ' ,)
echo DEVS=$(ls -n /proc/$v/root/dev | awk 'NR > 1 {print $NF ":" $3}' | xargs | tr ' ' ,)
echo ENVIRON=$(wc -c </proc/$v/environ)
echo NSPID=$(awk '/^NSpid:/ {print $NF}' /proc/$v/status)
n=0; for ns in mnt pid net ipc uts; do [ "$(readlink /proc/$v/ns/$ns)" = "$(readlink /proc/self/ns/$ns)" ] && n=$((n + 1)); done
echo SHARED_NS=$n
echo NOFILE=$(awk '/^Max open files/ {print $4}' /proc/$v/limits)
echo WRITABLE_ROOT=$(touch /proc/$v/root/x 2>/dev/null && echo yes || echo no)
kill -USR2 $v
wait $j
echo JAILER_EXIT=$?
grep -q 'killed by SIGSYS' /tmp/jail.err && echo REPORTED=1
cat /tmp/jail.err
)SH";

TEST(Jail, VmmIsConfinedAndAForbiddenCallKillsIt) {
  auto r = testhost::run(kJailed, "--any-kvm");
  ASSERT_NE(r.exit_code, 125) << r.output;
  int threads = std::atoi(r.value("THREADS").c_str());
  EXPECT_EQ(threads, 3) << r.output;  // the event loop and two vCPUs
  EXPECT_EQ(r.value("SECCOMP"), std::to_string(threads)) << r.output;
  EXPECT_EQ(r.value("NNP"), std::to_string(threads)) << r.output;
  EXPECT_EQ(r.value("CAPS_ZERO"), std::to_string(threads * 5)) << r.output;
  EXPECT_EQ(r.value("UIDS"), "31001310013100131001") << r.output;
  EXPECT_EQ(r.value("GIDS"), "31001310013100131001") << r.output;
  EXPECT_EQ(r.value("ROOT"), "dev,guest.bin") << r.output;
  EXPECT_EQ(r.value("DEVS"), "kvm:31001,urandom:31001") << r.output;
  EXPECT_EQ(r.value("ENVIRON"), "0") << r.output;
  EXPECT_EQ(r.value("NSPID"), "1") << r.output;
  EXPECT_EQ(r.value("SHARED_NS"), "0") << r.output;
  EXPECT_EQ(r.value("NOFILE"), "64") << r.output;
  EXPECT_EQ(r.value("WRITABLE_ROOT"), "no") << r.output;
  EXPECT_EQ(r.value("JAILER_EXIT"), "159") << r.output;  // 128 + SIGSYS: the jailer ends as the VMM did
  EXPECT_EQ(r.value("REPORTED"), "1") << r.output;
}

// Without the hook's call the same jailed VMM stops cleanly on SIGTERM: the teardown path
// (joins, closing KVM descriptors, unmapping guest memory) fits in the filters.
TEST(Jail, JailedVmmStopsCleanlyOnSigterm) {
  auto r = testhost::run(kIdle + R"SH(
printf '\364\353\375' >/tmp/idle.bin
mkdir -p /tmp/jail
"$HUSK_JAILER" --uid 31002 --gid 31002 --root /tmp/jail --bind /tmp/idle.bin:/guest.bin --dev /dev/kvm \
  -- "$HUSK_VMM" --bin /guest.bin --console none --mem 64 --vcpus 2 2>/tmp/jail.err &
j=$!
wait_for 30 "husk-vmm's threads to start under the jailer" vmm_started $j
kill -TERM $j
wait $j
echo JAILER_EXIT=$?
cat /tmp/jail.err
)SH", "--any-kvm");
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("JAILER_EXIT"), "143") << r.output;  // husk-vmm's status for SIGTERM, relayed
}

}  // namespace
}  // namespace husk
