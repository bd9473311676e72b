#!/usr/bin/env bash
# containerd drives husk through containerd-shim-husk-v2: a private containerd (own root, state
# and socket under a temp dir) with the shim on its PATH, a busybox OCI image imported with
# `ctr image import`, then the ctr commands users run. MODE vm boots a husk microVM per task
# (needs a KVM that boots Linux: run it through tests/testhost/run.sh); MODE host runs
# husk-agent on the host. Every check prints PASS/FAIL; any FAIL fails the script.
# usage: containerd_test.sh vm|host
# env: HUSK_SHIM_DIR (containerd-shim-husk-v2), HUSK_VMM, HUSK_KERNEL, HUSK_AGENT_INITRD,
#      HUSK_AGENT, HUSK_VIRTIOFSD, HUSK_OCI_IMAGE (or HUSK_TEST_ROOTFS to build it),
#      HUSK_RUNC_NO_PIVOT=1 where the root is an initramfs (the test host)
set -uo pipefail
mode=${1:?usage: containerd_test.sh vm|host}
D=$(mktemp -d /tmp/husk-ctd-XXXXXX)
fails=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then echo "PASS $1"; else echo "FAIL $1: expected [$2] got [$3]"; fails=$((fails + 1)); fi
}
check_match() {  # check_match NAME REGEX ACTUAL
  if printf '%s' "$3" | grep -Eq "$2"; then echo "PASS $1"; else echo "FAIL $1: [$3] does not match /$2/"; fails=$((fails + 1)); fi
}
cat >"$D/config.toml" <<T
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$D/containerd.sock"
T
if [ "$mode" = vm ]; then
  cat >"$D/shim.json" <<J
{"mode": "vm", "vmm": "$HUSK_VMM", "kernel": "$HUSK_KERNEL", "initramfs": "$HUSK_AGENT_INITRD",
 "virtiofsd": "${HUSK_VIRTIOFSD:-/usr/lib/qemu/virtiofsd}", "vcpus": 1, "memory_mib": 256, "agent_timeout_ms": 120000}
J
else
  echo "{\"mode\": \"host\", \"agent\": \"$HUSK_AGENT\"}" >"$D/shim.json"
fi
start_containerd() {
  rm -f "$D/containerd.sock"
  PATH=$HUSK_SHIM_DIR:$PATH HUSK_SHIM_CONFIG=$D/shim.json containerd --config "$D/config.toml" >>"$D/containerd.log" 2>&1 &
  ctd=$!
  for i in $(seq 100); do [ -S "$D/containerd.sock" ] && break; sleep 0.1; done
  command ctr --address "$D/containerd.sock" version >/dev/null 2>&1 || sleep 1
}
stop_containerd() { kill "$ctd" 2>/dev/null; wait "$ctd" 2>/dev/null; }
cleanup() {
  stop_containerd
  pkill -f "containerd-shim-husk-v2.*-address $D" 2>/dev/null
  sleep 0.5
  grep -o " $D[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$D"
}
trap cleanup EXIT
start_containerd
# A namespace of its own: cgroups are /<namespace>/<id>, so runs never meet each other's leftovers.
export CONTAINERD_NAMESPACE=husk-test-$(basename "$D" | cut -d- -f3)
ctr() { command ctr --address "$D/containerd.sock" "$@"; }
image_tar=${HUSK_OCI_IMAGE:-}
if [ -z "$image_tar" ]; then
  image_tar=$D/busybox.tar
  "$(dirname "$0")/../../images/build-oci-image.sh" "$HUSK_TEST_ROOTFS" "$image_tar" >/dev/null
fi
ctr image import "$image_tar" >/dev/null
img=docker.io/husk/busybox:latest
rt=(--runtime io.containerd.husk.v2 --snapshotter native)
runc_rt=(--runtime io.containerd.runc.v2 --snapshotter native ${HUSK_RUNC_NO_PIVOT:+--no-pivot})

# 1. ctr run --rm: output and exit code
out=$(ctr run --rm "${rt[@]}" $img r1 sh -c 'echo hello from husk; echo KERNEL=$(uname -r); exit 3')
check "run --rm exit code" 3 "$?"
check_match "run --rm output" "hello from husk" "$out"
[ "$mode" = vm ] && { [ "$(echo "$out" | sed -n 's/^KERNEL=//p')" != "$(uname -r)" ] && echo "PASS guest kernel" || { echo "FAIL guest kernel: ran on the host's"; fails=$((fails + 1)); }; }

# 2. a long-running task: exec with and without a terminal, ps, metrics, pause, resume, kill
ctr run -d "${rt[@]}" $img t1 sh -c 'trap "exit 143" TERM; while :; do sleep 0.1; done' >/dev/null
check "run -d" RUNNING "$(ctr task ls | awk '$1=="t1" {print $3}')"
out=$(ctr task exec --exec-id e1 t1 sh -c 'echo exec-out; exit 5')
check "exec exit code" 5 "$?"
check "exec output" exec-out "$out"
out=$(script -qec "command ctr --address $D/containerd.sock task exec -t --exec-id e2 t1 sh -c '[ -t 1 ] && echo tty'" /dev/null | tr -d '\r')
check_match "exec -t output" "tty" "$out"
check_match "ps lists the task" "^[0-9]+" "$(ctr task ps t1 | sed 1d)"
metrics=$(ctr task metrics t1 2>&1)
check_match "metrics" "pids.current" "$metrics"
[ "$mode" = vm ] && check_match "metrics pids in the guest" "pids.current +[1-9]" "$metrics"
ctr task pause t1
check "pause" PAUSED "$(ctr task ls | awk '$1=="t1" {print $3}')"
ctr task resume t1
check "resume" RUNNING "$(ctr task ls | awk '$1=="t1" {print $3}')"
ctr task kill t1  # SIGTERM: the trap exits 143
for i in $(seq 100); do [ "$(ctr task ls | awk '$1=="t1" {print $3}')" = STOPPED ] && break; sleep 0.1; done
check "kill TERM stops the task" STOPPED "$(ctr task ls | awk '$1=="t1" {print $3}')"
ctr task rm t1 >/dev/null
check "task rm" "" "$(ctr task ls | awk '$1=="t1"')"
ctr c rm t1

# 3. kill with KILL: exit status 137 from a foreground run
( ctr run --rm "${rt[@]}" $img k1 sh -c 'while :; do sleep 0.1; done'; echo $? >"$D/k1.code" ) &
k1=$!
for i in $(seq 300); do [ "$(ctr task ls | awk '$1=="k1" {print $3}')" = RUNNING ] && break; sleep 0.1; done
ctr task kill -s KILL k1
for i in $(seq 300); do [ -s "$D/k1.code" ] && break; sleep 0.1; done
check "kill KILL → 137" 137 "$(cat "$D/k1.code" 2>/dev/null)"
wait $k1

# 4. events: the same commands under the runc shim and husk's give the same topics in order
events_of() {  # events_of RUNTIME_ARGS... : topics seen for container "ev"
  local log=$D/events-$1.log
  command ctr --address "$D/containerd.sock" events >"$log" 2>&1 &
  local ev=$!
  sleep 0.3
  ctr run -d "$@" $img ev sh -c 'while :; do sleep 0.1; done' >/dev/null
  ctr task exec --exec-id x ev true
  ctr task pause ev
  ctr task resume ev
  ctr task kill -s KILL ev
  for i in $(seq 100); do [ "$(ctr task ls | awk '$1=="ev" {print $3}')" = STOPPED ] && break; sleep 0.1; done
  ctr task rm ev >/dev/null
  ctr c rm ev
  sleep 0.5
  kill $ev
  wait $ev 2>/dev/null
  awk '{print $6}' "$log" | grep -E '^/tasks/' | tr '\n' ' '
}
husk_events=$(events_of "${rt[@]}")
runc_events=$(events_of "${runc_rt[@]}")
echo "events husk: $husk_events"
echo "events runc: $runc_events"
check "event sequence matches the runc shim" "$runc_events" "$husk_events"

# 5. containerd killed and restarted: the running task stays reachable
ctr run -d "${rt[@]}" $img s1 sh -c 'while :; do sleep 0.1; done' >/dev/null
kill -9 "$ctd"; wait "$ctd" 2>/dev/null
start_containerd
check "task survives a containerd restart" RUNNING "$(ctr task ls | awk '$1=="s1" {print $3}')"
check "exec after the restart" again "$(ctr task exec --exec-id r s1 echo again)"
ctr task kill -s KILL s1
for i in $(seq 100); do [ "$(ctr task ls | awk '$1=="s1" {print $3}')" = STOPPED ] && break; sleep 0.1; done
ctr task rm s1 >/dev/null; ctr c rm s1

# 6. 20 sequential and 5 parallel runs leave nothing behind
for i in $(seq 20); do ctr run --rm "${rt[@]}" $img q$i true || echo "FAIL sequential run $i"; done
par=()
for i in $(seq 5); do ctr run --rm "${rt[@]}" $img p$i true & par+=($!); done
wait "${par[@]}"
sleep 1
check "no shim left" 0 "$(pgrep -f "containerd-shim-husk-v2.*-address $D" | wc -l)"
check "no VMM, virtiofsd or agent left" 0 "$(pgrep -f "$D/state/io.containerd.runtime.v2.task" | wc -l)"
check "no mounts left" 0 "$(grep -c " $D/state" /proc/mounts)"
check "no task state left" "" "$(ls "$D/state/io.containerd.runtime.v2.task/default" 2>/dev/null)"
check "no FIFOs left" 0 "$(find "$D/state" -type p 2>/dev/null | wc -l)"
echo "SHIM_TEST_FAILS=$fails"
[ "$fails" = 0 ]
