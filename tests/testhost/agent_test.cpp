// husk-agent as PID 1 of a husk microVM: the host reaches it over the VMM's hybrid vsock socket
// and runs a busybox container whose root filesystem comes over virtio-fs.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/testhost/testhost.h"

namespace husk {
namespace {

const std::string kAdds =
    "--add /usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd "
    "--add " HUSK_BUILD_DIR "/images/agent-initramfs.cpio:/husk/images/agent-initramfs.cpio "
    "--add " HUSK_BUILD_DIR "/images/test-bundle:/husk/images/test-bundle "
    "--add " HUSK_BUILD_DIR "/guest-agent/husk-agentctl:/husk/bin/husk-agentctl";

// Every capability: what a --privileged container gets.
const char kAllCaps[] =
    "\"CAP_CHOWN\", \"CAP_DAC_OVERRIDE\", \"CAP_DAC_READ_SEARCH\", \"CAP_FOWNER\", \"CAP_FSETID\", \"CAP_KILL\", "
    "\"CAP_SETGID\", \"CAP_SETUID\", \"CAP_SETPCAP\", \"CAP_LINUX_IMMUTABLE\", \"CAP_NET_BIND_SERVICE\", "
    "\"CAP_NET_BROADCAST\", \"CAP_NET_ADMIN\", \"CAP_NET_RAW\", \"CAP_IPC_LOCK\", \"CAP_IPC_OWNER\", "
    "\"CAP_SYS_MODULE\", \"CAP_SYS_RAWIO\", \"CAP_SYS_CHROOT\", \"CAP_SYS_PTRACE\", \"CAP_SYS_PACCT\", "
    "\"CAP_SYS_ADMIN\", \"CAP_SYS_BOOT\", \"CAP_SYS_NICE\", \"CAP_SYS_RESOURCE\", \"CAP_SYS_TIME\", "
    "\"CAP_SYS_TTY_CONFIG\", \"CAP_MKNOD\", \"CAP_LEASE\", \"CAP_AUDIT_WRITE\", \"CAP_AUDIT_CONTROL\", "
    "\"CAP_SETFCAP\", \"CAP_MAC_OVERRIDE\", \"CAP_MAC_ADMIN\", \"CAP_SYSLOG\", \"CAP_WAKE_ALARM\", "
    "\"CAP_BLOCK_SUSPEND\", \"CAP_AUDIT_READ\", \"CAP_PERFMON\", \"CAP_BPF\", \"CAP_CHECKPOINT_RESTORE\"";

// Boots the agent with the test bundle's rootfs shared as tag "share" and defines `ctl` and
// `bundle CMD...` (a bundle running CMD) for the rest of the script.
const std::string kBoot = R"SH(
mkdir -p /tmp/share && cp -a "$HUSK_ROOT/images/test-bundle/rootfs" /tmp/share/rootfs
/usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs.sock -o source=/tmp/share -o cache=none -o sandbox=chroot >/tmp/vfsd.log 2>&1 &
wait_for 10 "the socket of virtiofsd" test -S /tmp/vfs.sock
"$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_ROOT/images/agent-initramfs.cpio" --mem 256 --vcpus 1 \
  --vsock 3,/tmp/v.sock --fs share,/tmp/vfs.sock >/tmp/vmm.log 2>&1 &
vmm=$!
ctl() { husk-agentctl --address hvsock:/tmp/v.sock:1024 --timeout-ms 120000 "$@"; }
bundle() {
  d=$(mktemp -d)
  # The args land in a sed replacement: escape its & and | delimiter.
  args=$(for a in "$@"; do printf '"%s", ' "$a" | sed 's/[&|]/\\&/g'; done)
  sed "s|\"args\": \[\"sh\"\]|\"args\": [${args%, }]|" "$HUSK_ROOT/images/test-bundle/config.json" >"$d/config.json"
  echo "$d"
}
)SH";

const std::string kShutdown = R"SH(
ctl destroy-sandbox
wait_pid 200 $vmm husk-vmm
echo VMM_EXIT=$?
grep -q HUSK_AGENT_READY /tmp/vmm.log && echo AGENT_READY=1
tail -20 /tmp/vmm.log
)SH";

TEST(GuestAgent, RunsAContainerFromVirtioFsAndReportsItsExitCode) {
  auto r = testhost::run(kBoot + R"SH(
b=$(bundle sh -c 'echo OUTPUT=hello-from-the-guest; echo KERNEL=$(uname -r); echo ERR=on-stderr >&2; exit 7')
ctl run --id first --bundle "$b" --virtiofs share --subpath rootfs 2>&1
echo CTR_EXIT=$?
echo HOST_KERNEL=$(uname -r)
ctl details | tr -d ' ",' | sed 's/:/=/' | grep -E '^(cpus|memoryTotalBytes|agentRssBytes)='
)SH" + kShutdown, kAdds);
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("OUTPUT"), "hello-from-the-guest") << r.output;
  EXPECT_EQ(r.value("ERR"), "on-stderr") << r.output;
  EXPECT_EQ(r.value("CTR_EXIT"), "7") << r.output;
  // The container ran on the guest's kernel, not the test host's.
  ASSERT_FALSE(r.value("KERNEL").empty()) << r.output;
  EXPECT_NE(r.value("KERNEL"), r.value("HOST_KERNEL")) << r.output;
  EXPECT_EQ(r.value("cpus"), "1") << r.output;  // what --vcpus asked for
  EXPECT_GT(std::atoll(r.value("memoryTotalBytes").c_str()), 200LL << 20) << r.output;
  EXPECT_GT(std::atoll(r.value("agentRssBytes").c_str()), 0) << r.output;
  std::printf("guest agent RSS at idle: %s bytes\n", r.value("agentRssBytes").c_str());
  EXPECT_EQ(r.value("AGENT_READY"), "1") << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;  // DestroySandbox powers the guest off
}

TEST(GuestAgent, ExecKillStatsAndPauseInTheGuest) {
  auto r = testhost::run(kBoot + R"SH(
b=$(bundle sh -c 'i=0; while :; do i=$((i+1)); echo $i >/dev/shm/n; done')
ctl create --id svc --bundle "$b" --virtiofs share --subpath rootfs --null-io >/dev/null
ctl start --id svc
ctl exec --id svc --exec-id e1 --bundle "$b" -- sh -c 'echo EXEC_HOSTNAME=$(hostname); exit 3'
echo EXEC_EXIT=$?
ctl pause --id svc
a=$(ctl exec --id svc --exec-id e2 --bundle "$b" -- cat /dev/shm/n 2>&1 | head -c 200)
echo PAUSED_EXEC="$(echo $a | grep -c paused)"
ctl resume --id svc
ctl stats --id svc | tr -d ' ",' | sed 's/:/=/' | grep -E '^(current|usageUsec)=' | sed 's/^/STATS_/'
ctl kill --id svc TERM
ctl kill --id svc --all KILL
ctl wait --id svc
echo SVC_EXIT=$?
ctl rm --id svc
echo RM_EXIT=$?
)SH" + kShutdown, kAdds);
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("EXEC_HOSTNAME"), "runc") << r.output;
  EXPECT_EQ(r.value("EXEC_EXIT"), "3") << r.output;
  EXPECT_EQ(r.value("PAUSED_EXEC"), "1") << r.output;  // exec into a paused container is refused
  EXPECT_GT(std::atoll(r.value("STATS_current").c_str()), 0) << r.output;
  EXPECT_GT(std::atoll(r.value("STATS_usageUsec").c_str()), 0) << r.output;
  EXPECT_EQ(r.value("SVC_EXIT"), "137") << r.output;  // pid 1 ignores TERM; KILL ends it
  EXPECT_EQ(r.value("RM_EXIT"), "0") << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

// The attacks a container in the VM can make on the agent (PID 1 and its gRPC API): signalling
// PID 1 from a spec that shares the agent's pid and mount namespaces, and reaching the agent's
// vsock port through CID 1 (loopback), the guest's own CID or the host's, as a container with
// default capabilities and as one with all of them. The agent must stay up and unreached.
TEST(GuestAgent, ContainersCannotReachOrStopTheAgent) {
  auto r = testhost::run(kBoot + R"SH(
b=$(bundle sh -c 'echo PID1=$(cat /proc/1/comm); kill -TERM 1; kill -HUP 1; sleep 1; husk-probe vsock; husk-probe flood 3 1024 200; husk-probe flood 1 1024 50')
# No pid or mount namespace in the spec: under runc this container would share the agent's.
sed -i 's/{"type": "pid"}, //; s/, {"type": "mount"}//' "$b/config.json"
grep -c '"type": "pid"' "$b/config.json" | sed 's/^/SPEC_PID_NS=/'
ctl run --id shared --bundle "$b" --virtiofs share --subpath rootfs 2>&1
ctl details >/dev/null && echo AGENT_ALIVE_1=1
p=$(bundle husk-probe vsock)
sed -i 's/"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"/)SH" + std::string(kAllCaps) + R"SH(/g' "$p/config.json"
grep -q CAP_SYS_ADMIN "$p/config.json" && echo PRIVILEGED=1
ctl run --id privileged --bundle "$p" --virtiofs share --subpath rootfs 2>&1 | sed 's/^PROBE/PRIV_PROBE/'
ctl details >/dev/null && echo AGENT_ALIVE_2=1
)SH" + kShutdown, kAdds);
  ASSERT_NE(r.exit_code, 125) << r.output;
  EXPECT_EQ(r.value("SPEC_PID_NS"), "0") << r.output;
  // The container saw a pid namespace of its own: its PID 1 is its shell, not the agent.
  EXPECT_EQ(r.value("PID1"), "sh") << r.output;
  EXPECT_EQ(r.value("PRIVILEGED"), "1") << r.output;
  size_t probes = 0, priv_probes = 0, pos = 0;
  while ((pos = r.output.find("PROBE cid=", pos)) != std::string::npos) ++probes, ++pos;
  pos = 0;
  while ((pos = r.output.find("PRIV_PROBE cid=", pos)) != std::string::npos) ++priv_probes, ++pos;
  EXPECT_EQ(probes, 36u) << r.output;  // 18 from each container
  EXPECT_EQ(priv_probes, 18u) << r.output;
  EXPECT_EQ(r.output.find("result=REACHED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FLOOD reached=0 of 200"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FLOOD reached=0 of 50"), std::string::npos) << r.output;
  EXPECT_EQ(r.value("AGENT_ALIVE_1"), "1") << r.output;
  EXPECT_EQ(r.value("AGENT_ALIVE_2"), "1") << r.output;
  EXPECT_EQ(r.value("VMM_EXIT"), "0") << r.output;
}

}  // namespace
}  // namespace husk
