#!/usr/bin/env bash
# containerd drives husk through containerd-shim-husk-v2: a private containerd (own root, state
# and socket under a temp dir) with the shim on its PATH, a busybox OCI image imported with
# `ctr image import`, then the ctr commands users run. MODE vm boots a husk microVM per task
# (needs a KVM that boots Linux: run it through tests/testhost/run.sh); MODE host runs
# husk-agent on the host. Every check prints PASS/FAIL; any FAIL fails the script.
# usage: containerd_test.sh vm|host [SECTION...]
#   sections: run task kill events restart pod config hostile perms jail leaks (default: all;
#   hostile and jail run in a VM only).
# env: HUSK_SHIM_START=boot|template (the shim's "start", default boot),
#      HUSK_LEAK_RUNS="SEQUENTIAL PARALLEL" (default "20 5"), HUSK_SHIM_DIR
#      (containerd-shim-husk-v2), HUSK_VMM, HUSK_KERNEL, HUSK_AGENT_INITRD, HUSK_AGENT, HUSK_VIRTIOFSD, HUSK_OCI_IMAGE (or HUSK_TEST_ROOTFS to build it),
#      HUSK_RUNC_NO_PIVOT=1 where the root is an initramfs (the test host)
set -uo pipefail
. "$(dirname "$0")/../../scripts/lib/containerd.sh"
mode=${1:?usage: containerd_test.sh vm|host [SECTION...]}
shift
sections=" ${*:-run task kill events restart pod config network hostile perms jail leaks} "
want() { [[ $sections == *" $1 "* ]]; }
read -r seq_runs par_runs <<<"${HUSK_LEAK_RUNS:-20 5}"
D=$(mktemp -d /tmp/husk-ctd-XXXXXX)
CTD_DIR=$D CTD_SHIM_DIR=$HUSK_SHIM_DIR
fails=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then echo "PASS $1"; else echo "FAIL $1: expected [$2] got [$3]"; fails=$((fails + 1)); fi
}
check_match() {  # check_match NAME REGEX ACTUAL
  if grep -Eq -- "$2" <<<"$3"; then echo "PASS $1"; else echo "FAIL $1: [$3] does not match /$2/"; fails=$((fails + 1)); fi
}
if [ "$mode" = vm ]; then
  cat >"$D/shim.json" <<J
{"mode": "vm", "state_dir": "$D/run", "vmm": "$HUSK_VMM", "jailer": "$HUSK_JAILER", "kernel": "$HUSK_KERNEL", "initramfs": "$HUSK_AGENT_INITRD",
 "virtiofsd": "${HUSK_VIRTIOFSD:-/usr/lib/qemu/virtiofsd}", "vcpus": 1, "memory_mib": 256, "max_vcpus": 8, "agent_timeout_ms": 120000,
 "start": "${HUSK_SHIM_START:-boot}"}
J
  echo "sandboxes start by: ${HUSK_SHIM_START:-boot}"
else
  echo "{\"mode\": \"host\", \"state_dir\": \"$D/run\", \"agent\": \"$HUSK_AGENT\"}" >"$D/shim.json"
fi
trap ctd_cleanup EXIT
ctd_start
# A namespace of its own: cgroups are /<namespace>/<id>, so runs never meet each other's leftovers.
export CONTAINERD_NAMESPACE=husk-test-$(basename "$D" | cut -d- -f3)
image_tar=${HUSK_OCI_IMAGE:-}
if [ -z "$image_tar" ]; then
  image_tar=$D/busybox.tar
  "$(dirname "$0")/../../images/build-oci-image.sh" "$HUSK_TEST_ROOTFS" "$image_tar" >/dev/null
fi
ctr image import "$image_tar" >/dev/null
img=docker.io/husk/busybox:latest
rt=(--runtime io.containerd.husk.v2 --snapshotter native)
runc_rt=(--runtime io.containerd.runc.v2 --snapshotter native ${HUSK_RUNC_NO_PIVOT:+--no-pivot})

state() { ctr task ls | awk -v id="$1" '$1==id {print $3}'; }
# What the shims keep under state_dir: a directory per sandbox (and jail-uids, the jail's uid
# locks, and templates, which stay).
run_state() { ls "$D/run" 2>/dev/null | grep -Ev '^(jail-uids|templates)$'; }
sandbox_dir() { ls -d "$D"/run/*/ 2>/dev/null | grep -Ev '/(jail-uids|templates)/$' | head -1; }
state_is() { [ "$(state "$1")" = "$2" ]; }
wait_state() {  # wait_state ID STATE: a deadline scaled to this machine, then says what it saw
  wait_until 60 "task $1 to be $2" state_is "$1" "$2" || echo "  (task $1 is [$(state "$1")])"
}
echo "time scale on this machine: $(time_scale)x"

# 1. ctr run --rm: output and exit code
if want run; then
if [ "$mode" = vm ] && [ "${HUSK_SHIM_START:-boot}" = template ]; then
  # The operator makes the template before any sandbox needs it; the sandboxes below restore it.
  out=$("$HUSK_CLI" template create --config "$D/shim.json" 2>&1)
  check_match "husk template create: made" "^template $D/run/templates/[0-9a-f]{16} created$" "$(echo "$out" | tail -1)"
  out=$("$HUSK_CLI" template create --config "$D/shim.json" 2>&1)
  check_match "husk template create: made once" " exists$" "$(echo "$out" | tail -1)"
  check_match "husk template list: the one in use" "^[0-9a-f]{16} current " "$("$HUSK_CLI" template list --config "$D/shim.json")"
  check "husk template create: no sandbox left behind" "" "$(run_state)"
fi
out=$(ctr run --rm "${rt[@]}" $img r1 sh -c 'echo hello from husk; echo KERNEL=$(uname -r); exit 3')
check "run --rm exit code" 3 "$?"
check_match "run --rm output" "hello from husk" "$out"
[ "$mode" = vm ] && { [ "$(echo "$out" | sed -n 's/^KERNEL=//p')" != "$(uname -r)" ] && echo "PASS guest kernel" || { echo "FAIL guest kernel: ran on the host's"; fails=$((fails + 1)); }; }
if [ "$mode" = vm ] && [ "${HUSK_SHIM_START:-boot}" = template ]; then
  # The first sandbox made the template; a second, on another container, restores it: two
  # different random draws and the host's date, from copies of one snapshot.
  check "template: made once, complete" "inputs mem state " "$(ls "$D"/run/templates/*/ 2>/dev/null | sort | tr '\n' ' ')"
  a=$(ctr run --rm "${rt[@]}" $img r2 sh -c 'head -c 16 /dev/urandom | md5sum; date +%s')
  b=$(ctr run --rm "${rt[@]}" $img r3 sh -c 'head -c 16 /dev/urandom | md5sum; date +%s')
  check "template: copies draw different random numbers" 2 "$(printf '%s\n%s\n' "$(echo "$a" | head -1)" "$(echo "$b" | head -1)" | sort -u | wc -l)"
  skew=$(( $(date +%s) - $(echo "$b" | tail -1) ))
  check "template: a copy has the host's clock" 1 "$([ "${skew#-}" -le 60 ] && echo 1 || echo 0)"
  check "template: still one template" 1 "$(ls -d "$D"/run/templates/*/ | wc -l)"
  # For a config with another memory size that template is stale: listed so, and pruned.
  sed 's/"memory_mib": 256/"memory_mib": 384/' "$D/shim.json" >"$D/other.json"
  check_match "husk template list: stale for another config" "^[0-9a-f]{16} stale " "$("$HUSK_CLI" template list --config "$D/other.json")"
  check_match "husk template prune" "^removed [0-9a-f]{16}$" "$("$HUSK_CLI" template prune --config "$D/other.json")"
  check "husk template prune: none left" 0 "$(ls -d "$D"/run/templates/*/ 2>/dev/null | wc -l)"
fi
fi

# 2. a long-running task: exec with and without a terminal, ps, metrics, pause, resume, kill
if want task; then
ctr run -d "${rt[@]}" $img t1 sh -c 'trap "exit 143" TERM; while :; do sleep 0.1; done' >/dev/null
check "run -d" RUNNING "$(state t1)"
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
check "pause" PAUSED "$(state t1)"
ctr task resume t1
check "resume" RUNNING "$(state t1)"
ctr task kill t1  # SIGTERM: the trap exits 143
wait_state t1 STOPPED
check "kill TERM stops the task" STOPPED "$(state t1)"
ctr task rm t1 >/dev/null
check "task rm" "" "$(state t1)"
ctr c rm t1
fi

# 3. kill with KILL: exit status 137 from a foreground run
if want kill; then
( ctr run --rm "${rt[@]}" $img k1 sh -c 'while :; do sleep 0.1; done'; echo $? >"$D/k1.code" ) &
k1=$!
wait_state k1 RUNNING
ctr task kill -s KILL k1
wait_until 60 "ctr run of k1 to return after its KILL" test -s "$D/k1.code"
check "kill KILL → 137" 137 "$(cat "$D/k1.code" 2>/dev/null)"
# If the task came up late (or never), the KILL above found nothing: end it now, then the run.
ctr task kill -s KILL k1 >/dev/null 2>&1
wait_bounded 30 $k1 "the backgrounded ctr run of k1"
fi

# 4. events: the same commands under the runc shim and husk's give the same topics in order
events_of() {  # events_of RUNTIME_ARGS... : topics seen for container "ev"
  local log=$D/events-$2.log  # named after the runtime
  # timeout itself in the background (not a function's subshell): $! is what kill must reach.
  timeout -k 5 $((600 * $(time_scale))) "$(type -P ctr)" --address "$D/containerd.sock" events >"$log" 2>&1 &
  local ev=$! n=0
  # Subscribed once an event we cause shows up (a namespace label change publishes one).
  subscribed() { n=$((n + 1)); ctr namespaces label "$CONTAINERD_NAMESPACE" husk-probe=$n; grep -q /namespaces/update "$log"; }
  wait_until 30 "ctr events to subscribe" subscribed
  ctr run -d "$@" $img ev sh -c 'while :; do sleep 0.1; done' >/dev/null
  ctr task exec --exec-id x ev true
  ctr task pause ev
  ctr task resume ev
  ctr task kill -s KILL ev
  wait_state ev STOPPED
  ctr task rm ev >/dev/null
  ctr c rm ev
  wait_until 30 "the delete event of ev" grep -q /tasks/delete "$log"
  kill $ev
  wait $ev 2>/dev/null
  awk '{print $6}' "$log" | grep -E '^/tasks/' | tr '\n' ' '
}
if want events; then
husk_events=$(events_of "${rt[@]}")
runc_events=$(events_of "${runc_rt[@]}")
echo "events husk: $husk_events"
echo "events runc: $runc_events"
check "event sequence matches the runc shim" "$runc_events" "$husk_events"
fi

# 5. containerd killed and restarted: the running task stays reachable
if want restart; then
ctr run -d "${rt[@]}" $img s1 sh -c 'while :; do sleep 0.1; done' >/dev/null
kill -9 "$ctd"; wait "$ctd" 2>/dev/null
ctd_start
check "task survives a containerd restart" RUNNING "$(state s1)"
check "exec after the restart" again "$(ctr task exec --exec-id r s1 echo again)"
ctr task kill -s KILL s1
wait_state s1 STOPPED
ctr task rm s1 >/dev/null; ctr c rm s1
fi

# 6. a pod: containers naming the same io.kubernetes.cri.sandbox-id share one shim and one
# sandbox (one VM); a member leaving keeps the sandbox; the sandbox container leaving ends it.
pod_ann() { echo --annotation io.kubernetes.cri.container-type=$1 --annotation io.kubernetes.cri.sandbox-id=${2:-pod1}; }
if want pod; then
ctr run -d "${rt[@]}" $(pod_ann sandbox) $img pod1 sh -c 'while :; do sleep 0.1; done' >/dev/null
ctr run -d "${rt[@]}" $(pod_ann container) $img m1 sh -c 'while :; do sleep 0.1; done' >/dev/null
check "pod: sandbox running" RUNNING "$(state pod1)"
check "pod: member running" RUNNING "$(state m1)"
tasks=$D/state/io.containerd.runtime.v2.task/$CONTAINERD_NAMESPACE
check "pod: one shim serves both" "$(cat "$tasks/pod1/address")" "$(cat "$tasks/m1/address" 2>/dev/null)"
check "pod: one shim process" 1 "$(procs "containerd-shim-husk-v2.*-address $D")"
boot_pod=$(ctr task exec --exec-id b1 pod1 cat /proc/sys/kernel/random/boot_id)
boot_m1=$(ctr task exec --exec-id b2 m1 cat /proc/sys/kernel/random/boot_id)
check "pod: same kernel for both" "$boot_pod" "$boot_m1"
if [ "$mode" = vm ]; then
  check "pod: one VMM (one jailer starting husk-vmm)" 1 "$(procs "husk-jailer .*--root $D/run/.* -- [^ ]*husk-vmm ")"
  [ "$boot_pod" != "$(cat /proc/sys/kernel/random/boot_id)" ] && echo "PASS pod: runs in a guest" || { echo "FAIL pod: host kernel"; fails=$((fails + 1)); }
fi
# A member whose create fails (no such program) leaves the pod running and nothing behind.
ctr run -d "${rt[@]}" $(pod_ann container) $img bad1 /no/such/program >/dev/null 2>&1
check "pod: a failing member is refused" 1 "$?"
wait_state bad1 STOPPED
check "pod: the failed member is stopped" STOPPED "$(state bad1)"
ctr task rm bad1 >/dev/null; ctr c rm bad1
check "pod: sandbox unharmed by it" alive "$(ctr task exec --exec-id b4 pod1 echo alive)"
ctr task kill -s KILL m1; wait_state m1 STOPPED
ctr task rm m1 >/dev/null; ctr c rm m1
check "pod: sandbox outlives a member" alive "$(ctr task exec --exec-id b3 pod1 echo alive)"
ctr task kill -s KILL pod1; wait_state pod1 STOPPED
ctr task rm pod1 >/dev/null; ctr c rm pod1
wait_until 30 "the pod's shim to exit" eval '[ "$(procs "containerd-shim-husk-v2.*-address $D")" = 0 ]'
check "pod: shim gone with the sandbox" 0 "$(procs "containerd-shim-husk-v2.*-address $D")"
check "pod: sandbox state gone" "" "$(run_state)"
fi

# 7. configuration: ctr's --runtime-config-path reaches the shim (runtime options ConfigPath);
# a config file with a typo fails the run with the reason; annotations size the VM.
if want config; then
echo '{"vcpu": 2}' >"$D/typo.json"
out=$(ctr run --rm "${rt[@]}" --runtime-config-path "$D/typo.json" $img cfg1 true 2>&1)
check_match "config path from runtime options: typo reported" 'unknown field \\?"vcpu' "$out"
ctr c rm cfg1 >/dev/null 2>&1
if [ "$mode" = vm ]; then
  sed 's/"vcpus": 1/"vcpus": 2/' "$D/shim.json" >"$D/two.json"
  check "config file from runtime options: 2 vCPUs" 2 "$(ctr run --rm "${rt[@]}" --runtime-config-path "$D/two.json" $img cfg2 nproc)"
  mem=$(ctr run --rm "${rt[@]}" --annotation io.husk.memory_mib=400 $img cfg3 awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
  check_match "annotation io.husk.memory_mib=400 sizes the guest (MemTotal MiB)" '^3[0-9][0-9]$' "$mem"
fi
fi

# 7b. pod networking (VM mode): a network namespace as CNI leaves it (a veth eth0 with the pod IP
# and a default route; its peer outside with the gateway address) extended into the VM: the
# host fetches a file a container serves on the pod IP, a second container of the pod reaches it
# over localhost, the guest's eth0 has the veth's MAC, address and route; teardown leaves no tap
# or redirect in the namespace; a missing namespace is a clear error; no namespace, only loopback.
if want network && [ "$mode" = vm ]; then
netns=husknet$$ hv=husk-hv$$
ip netns add $netns
ip link add $hv type veth peer name husk-pv$$
ip link set husk-pv$$ netns $netns
ip -n $netns link set husk-pv$$ name eth0
ip -n $netns addr add 10.215.0.2/24 dev eth0
ip -n $netns link set eth0 up
ip -n $netns link set lo up
ip -n $netns route add default via 10.215.0.1
ip addr add 10.215.0.1/24 dev $hv
ip link set $hv up
ctr run -d "${rt[@]}" $(pod_ann sandbox netpod) --with-ns network:/var/run/netns/$netns $img web \
  sh -c 'mkdir -p /www && head -c 300000 /dev/urandom >/www/blob && md5sum </www/blob | cut -d" " -f1 >/www/sum && exec httpd -f -p 8080 -h /www' >/dev/null
check "network: the pod's sandbox runs" RUNNING "$(state web)"
# http_get HOST PATH BYTES: the response's last BYTES bytes (busybox nc reads until HTTP/1.0 closes).
http_get() { printf 'GET %s HTTP/1.0\r\n\r\n' "$2" | nc -w 30 "$1" 8080 | tail -c "$3"; }
served() { [ "$(http_get 10.215.0.2 /sum 33 | wc -c)" = 33 ]; }
wait_until 20 "the pod IP to serve" served
http_get 10.215.0.2 /sum 33 | head -c 32 >"$D/sum"
http_get 10.215.0.2 /blob 300000 >"$D/blob"
check_match "network: the container's checksum fetched by the pod IP" '^[0-9a-f]{32}$' "$(cat "$D/sum")"
check "network: the host fetches the container's file by the pod IP, bytes intact" "$(cat "$D/sum")" "$(md5sum <"$D/blob" | cut -d' ' -f1)"
check "network: 300000 bytes" 300000 "$(wc -c <"$D/blob")"
ctr run -d "${rt[@]}" $(pod_ann container netpod) --with-ns network:/var/run/netns/$netns $img peer sleep 600 >/dev/null
check "network: a second container of the pod reaches the first over localhost" "$(cat "$D/sum" 2>/dev/null)" \
  "$(ctr task exec --exec-id n0 peer sh -c "printf 'GET /sum HTTP/1.0\r\n\r\n' | nc -w 20 127.0.0.1 8080 | tail -c 33 | head -c 32")"
check "network: the guest's eth0 has the pod address" 10.215.0.2/24 \
  "$(ctr task exec --exec-id n1 web ip -o -4 addr show dev eth0 | awk '{print $4}')"
check "network: the guest's eth0 has the veth's MAC" "$(ip -n $netns -o link show eth0 | grep -o 'link/ether [^ ]*' | cut -d' ' -f2)" \
  "$(ctr task exec --exec-id n2 web cat /sys/class/net/eth0/address)"
check_match "network: the guest's default route is the pod's" 'default via 10\.215\.0\.1 dev eth0' \
  "$(ctr task exec --exec-id n3 web ip route show default)"
check "network: one tap in the pod's namespace" 1 "$(ip -n $netns -o link show | grep -c tap0_husk)"
if [ "${HUSK_SHIM_START:-boot}" = template ]; then
  # The pod's sandbox restored a template with one NIC (made for it: another than the plain one),
  # and the agent gave the NIC the pod's MAC (checked above).
  check "network: the pod restored a one-NIC template" 1 "$(grep -lx 'nics=1' "$D"/run/templates/*/inputs 2>/dev/null | wc -l)"
  check_match "network: the one-NIC template is listed as in use" "current" "$("$HUSK_CLI" template list --config "$D/shim.json")"
fi
check_match "network: husk-vmm is handed the tap as an fd" '^--net fd=[0-9]+,' "$(for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' <"$f"; echo; done 2>/dev/null | grep -o -- '--net fd=[0-9]*,' | head -1)"
ctr task kill -s KILL peer; wait_state peer STOPPED; ctr task rm peer >/dev/null; ctr c rm peer
ctr task kill -s KILL web; wait_state web STOPPED; ctr task rm web >/dev/null; ctr c rm web
wait_until 30 "the pod's shim to exit" eval '[ "$(procs "containerd-shim-husk-v2.*-address $D")" = 0 ]'
check "network: no tap left in the namespace" 0 "$(ip -n $netns -o link show | grep -c _husk)"
check "network: no redirect left on eth0" 0 "$(tc -n $netns qdisc show dev eth0 | grep -c ingress)"
check "network: the namespace's own address untouched" 1 "$(ip -n $netns -o -4 addr show dev eth0 | grep -c 10.215.0.2/24)"
out=$(ctr run --rm "${rt[@]}" --with-ns network:/var/run/netns/husk-no-such-ns $img nons true 2>&1)
check_match "network: a missing namespace is named in the error" '/var/run/netns/husk-no-such-ns' "$out"
ctr c rm nons >/dev/null 2>&1
check "network: without a namespace the guest has only loopback" lo \
  "$(ctr run --rm "${rt[@]}" $img lonly sh -c "ip -o link show | awk -F': ' '{print \$2}'" | tr -d '\r' | tr '\n' ' ' | sed 's/ $//')"
# The shim killed under a running pod: containerd runs `delete`, which takes the redirect off
# the pod's eth0 (the tap went with the last process holding it) and stops the sandbox's helpers.
ctr run -d "${rt[@]}" $(pod_ann sandbox crashpod) --with-ns network:/var/run/netns/$netns $img crashpod sleep 600 >/dev/null
check "network: a pod runs again in the namespace" RUNNING "$(state crashpod)"
check "network: with its tap and redirect" "1 1" "$(ip -n $netns -o link show | grep -c tap0_husk) $(tc -n $netns qdisc show dev eth0 | grep -c ingress)"
kill -9 $(pids_of "containerd-shim-husk-v2.*-address $D")
cleaned() { [ "$(tc -n $netns qdisc show dev eth0 | grep -c ingress)" = 0 ] && [ -z "$(pids_of "husk-jailer .*$D/run/")" ]; }
wait_until 60 "containerd's delete after the killed shim" cleaned
check "network: after the shim was killed, no redirect left on eth0" 0 "$(tc -n $netns qdisc show dev eth0 | grep -c ingress)"
check "network: after the shim was killed, no tap left" 0 "$(ip -n $netns -o link show | grep -c _husk)"
check "network: after the shim was killed, no husk-vmm or virtiofsd left" "" "$(pids_of "husk-jailer .*$D/run/|virtiofsd.*$D/run/")"
check "network: after the shim was killed, the namespace's address untouched" 1 "$(ip -n $netns -o -4 addr show dev eth0 | grep -c 10.215.0.2/24)"
ctr task rm -f crashpod >/dev/null 2>&1; ctr c rm crashpod >/dev/null 2>&1
ip netns del $netns
ip link del $hv 2>/dev/null
fi

# 8. what a hostile container tries in its VM: reach the agent over vsock (CID 1, its own CID,
# the host's), as root, under containerd's default seccomp profile and privileged; write into
# the virtio-fs share so the shim would mount or unmount on a host path; write a read-only root.
if want hostile && [ "$mode" = vm ]; then
for opts in "" "--seccomp" "--privileged"; do
  out=$(ctr run --rm $opts "${rt[@]}" $img probe1 husk-probe vsock 2>&1)
  check "vsock probes ran (${opts:-root})" 18 "$(grep -c '^PROBE' <<<"$out")"
  check "no vsock probe reached the agent (${opts:-root})" 0 "$(grep -c 'result=REACHED' <<<"$out")"
done
mkdir -p "$D/canary" && echo untouched >"$D/canary/file"
mounts_before=$(grep -vc " $D/" /proc/mounts)
ctr run -d --privileged "${rt[@]}" $(pod_ann sandbox hpod) $img hpod sh -c 'while :; do sleep 0.1; done' >/dev/null
out=$(ctr task exec --exec-id a1 hpod sh -c "
  mkdir -p /mnt/s && mount -t virtiofs husk /mnt/s && echo SHARE_MOUNTED
  mv /mnt/s/hpod/rootfs /mnt/s/hpod/moved 2>&1
  ln -s /proc /mnt/s/hmember 2>&1
  ln -s $D/canary /mnt/s/hpod/escape 2>&1
  mkdir /mnt/s/hmember 2>&1
  echo x >/mnt/s/hpod/file 2>&1
  ls /mnt/s" 2>&1)
check_match "hostile: a privileged container mounts the share" SHARE_MOUNTED "$out"
check "hostile: nothing around container roots is writable (5 refusals)" 5 "$(grep -cE 'Read-only file system|Resource busy' <<<"$out")"
ctr run -d "${rt[@]}" $(pod_ann container hpod) $img hmember sh -c 'while :; do sleep 0.1; done' >/dev/null
check "hostile: the next pod member is created normally" RUNNING "$(state hmember)"
check "hostile: and runs on its own root" hmember-root "$(ctr task exec --exec-id a2 hmember sh -c 'echo hmember-root >/root-file && cat /root-file')"
for t in hmember hpod; do ctr task kill -s KILL $t; wait_state $t STOPPED; ctr task rm $t >/dev/null; ctr c rm $t; done
check "hostile: the host canary is untouched" untouched "$(cat "$D/canary/file")"
check "hostile: no mount appeared or went elsewhere on the host" "$mounts_before" "$(grep -vc " $D/" /proc/mounts)"
wait_until 30 "the hostile pod's sandbox to go" eval '[ -z "$(run_state)" ]'
check "hostile: nothing left of the sandbox" "" "$(run_state)"
out=$(ctr run --rm --read-only --privileged "${rt[@]}" $img ro1 sh -c 'mount -o remount,rw / 2>/dev/null; touch /written 2>&1; echo rc=$?' 2>&1)
check_match "hostile: a read-only root stays read-only even remounted in the guest" "rc=[1-9]" "$out"
check "hostile: the image was not written" "" "$(find "$D/root" -name written 2>/dev/null)"
fi

# 9. the shim's files are root's alone, and helpers inherit none of its connections.
if want perms; then
ctr run -d "${rt[@]}" $img perm1 sh -c 'while :; do sleep 0.1; done' >/dev/null
sb=$(sandbox_dir)
check "perms: state_dir is 0700" 700 "$(stat -c %a "$D/run")"
check "perms: the sandbox directory is 0700" 700 "$(stat -c %a "$sb")"
check "perms: every log is 0600" "" "$(find "$sb" -maxdepth 1 -name '*.log' ! -perm 600)"
check "perms: every socket is 0600" "" "$(find "$sb" -maxdepth 1 -type s ! -perm 600)"
addr=$(sed 's|^unix://||' "$D/state/io.containerd.runtime.v2.task/$CONTAINERD_NAMESPACE/perm1/address")
check "perms: the shim's task socket is 0600" 600 "$(stat -c %a "$addr")"
sockets_of() { for f in /proc/$1/fd/*; do readlink "$f"; done 2>/dev/null | grep '^socket:' | sort -u; }
shim=$(pids_of "containerd-shim-husk-v2.*-address $D" | head -1)
shared=0
helpers=$(pids_of "$D/run/")  # jailers, virtiofsd; and the VMMs under their jailers
for j in $(pids_of "husk-jailer .*$D/run/"); do helpers="$helpers $(cat "/proc/$j/task/$j/children" 2>/dev/null)"; done
for h in $helpers; do
  shared=$((shared + $(comm -12 <(sockets_of "$shim") <(sockets_of "$h") | wc -l)))
done
check "perms: no helper holds a socket of the shim's (containerd's connections, the task socket)" 0 "$shared"
ctr task kill -s KILL perm1; wait_state perm1 STOPPED; ctr task rm perm1 >/dev/null; ctr c rm perm1
fi

# 10. the jail: every sandbox's husk-vmm unprivileged, capability-less, seccomp-filtered, alone
# in its namespaces and root, with virtiofsd in the sandbox's cgroup; a VMM that breaks its
# seccomp filter dies, its task exits and containerd's log says why.
if want jail && [ "$mode" = vm ]; then
if ! out=$(ctr run -d "${rt[@]}" $img jl1 sh -c 'while :; do sleep 0.1; done' 2>&1); then
  check "jail: a jailed sandbox starts" "" "$out"
else
wait_state jl1 RUNNING
sb=$(sandbox_dir)
vmm_of() {  # vmm_of SANDBOX_DIR: the pid of husk-vmm, the child of that sandbox's jailer
  local j
  j=$(pids_of "husk-jailer .*--root ${1}jail " | head -1)
  [ -n "$j" ] && awk '{print $1}' "/proc/$j/task/$j/children"
}
vmm=$(vmm_of "$sb")
check "jail: husk-vmm runs under husk-jailer" husk-vmm "$(tr '\0' '\n' <"/proc/$vmm/cmdline" 2>/dev/null | head -1)"
# Our threads: the kernel may add workers of its own to a KVM process (kvm-nx-lpage-recovery).
ours=$(for t in /proc/"$vmm"/task/*; do [ "$(cat "$t/comm" 2>/dev/null)" = husk-vmm ] && echo "$t"; done)
statuses=$(for t in $ours; do cat "$t/status"; done 2>/dev/null)
threads=$(wc -w <<<"$ours")
check "jail: husk-vmm has its vCPU thread and event loop" 1 "$([ "$threads" -ge 2 ] && echo 1)"
check "jail: every thread seccomp-filtered (Seccomp: 2)" "$threads" "$(grep -cE '^Seccomp:\s+2$' <<<"$statuses")"
check "jail: every thread NoNewPrivs: 1" "$threads" "$(grep -cE '^NoNewPrivs:\s+1$' <<<"$statuses")"
check "jail: every capability set empty in every thread" "$((threads * 5))" "$(grep -cE '^Cap(Inh|Prm|Eff|Bnd|Amb):\s+0+$' <<<"$statuses")"
uid=$(awk '/^Uid:/ {print $2; exit}' <<<"$statuses")
check "jail: an unprivileged uid from the range" 1 "$([ "${uid:-0}" -ge 200000 ] && [ "$uid" -lt 210000 ] && echo 1)"
check "jail: real, effective, saved and fs uid and gid all the jail's" "$threads" \
  "$(grep -cE "^(Uid|Gid):\s+$uid\s+$uid\s+$uid\s+$uid$" <<<"$statuses" | awk -v t="$threads" '{print $1 / 2}')"
check "jail: no supplementary groups" "" "$(awk '/^Groups:/ {print $2}' <<<"$statuses" | sort -u)"
check "jail: its root holds only the kernel, initramfs and devices" "dev initrd vmlinux" "$(ls "/proc/$vmm/root/" 2>/dev/null | xargs)"
check "jail: its devices" "kvm urandom" "$(ls "/proc/$vmm/root/dev" 2>/dev/null | xargs)"
check "jail: an empty environment" 0 "$(wc -c <"/proc/$vmm/environ" 2>/dev/null)"
shared_ns=0
for ns in mnt pid net ipc uts; do [ "$(readlink "/proc/$vmm/ns/$ns")" = "$(readlink /proc/self/ns/$ns)" ] && shared_ns=$((shared_ns + 1)); done
check "jail: new mount, pid, net, ipc and uts namespaces" 0 "$shared_ns"
check "jail: pid 1 of its pid namespace" 1 "$(awk '/^NSpid:/ {print $NF}' "/proc/$vmm/status")"
check "jail: descriptor limit" 2048 "$(awk '/^Max open files/ {print $4}' "/proc/$vmm/limits")"
check "jail: no core files" 0 "$(awk '/^Max core file size/ {print $5}' "/proc/$vmm/limits")"
check "jail: no host file open but its log and console" "" \
  "$(for f in /proc/$vmm/fd/*; do readlink "$f"; done | grep '^/' | grep -vE "^(/dev/null|${sb}vmm.log|${sb}console.log|/dev/kvm|/dev/urandom|/memfd:husk-fs-bounce \(deleted\))$")"
cg=$(sed -n 's/^0:://p' "/proc/$vmm/cgroup")
check "jail: in the sandbox's cgroup (the container's cgroupsPath)" "/$CONTAINERD_NAMESPACE/jl1" "$cg"
check "jail: memory.max = guest RAM + overhead" $(((256 + 128) << 20)) "$(cat "/sys/fs/cgroup$cg/memory.max" 2>/dev/null)"
check "jail: cpu.max = vCPUs + 1" "200000 100000" "$(cat "/sys/fs/cgroup$cg/cpu.max" 2>/dev/null)"
fsd=$(pids_of "^[^ ]*virtiofsd .*source=${sb}shared" | head -1)  # virtiofsd itself, not its jailer
check "jail: virtiofsd in the same cgroup" "$cg" "$(sed -n 's/^0:://p' "/proc/$fsd/cgroup" 2>/dev/null)"
check "jail: virtiofsd in its own network namespace" 1 "$([ "$(readlink "/proc/$fsd/ns/net")" != "$(readlink /proc/self/ns/net)" ] && echo 1)"
check "jail: virtiofsd's environment empty" 0 "$(wc -c <"/proc/$fsd/environ" 2>/dev/null)"
check "jail: the container still works" jail-ok "$(ctr task exec --exec-id je jl1 echo jail-ok)"
ctr task kill -s KILL jl1; wait_state jl1 STOPPED; ctr task rm jl1 >/dev/null; ctr c rm jl1
wait_until 30 "the sandbox cgroup to go" eval "[ ! -d /sys/fs/cgroup$cg ]"
check "jail: the sandbox cgroup is removed" "" "$(ls -d "/sys/fs/cgroup$cg" 2>/dev/null)"
check "jail: the uid is released" "" "$(ls "$D/run/jail-uids" 2>/dev/null)"

sed 's/^{/{"vmm_args": ["--test-forbidden-syscall"], /' "$D/shim.json" >"$D/hook.json"
ctr run "${rt[@]}" --runtime-config-path "$D/hook.json" $img jl2 sh -c 'while :; do sleep 0.1; done' >"$D/jl2.out" 2>&1 &
runner=$!
wait_state jl2 RUNNING
sb2=$(sandbox_dir)
vmm2=$(vmm_of "$sb2")
kill -USR2 "$vmm2"  # test hook: vCPU 0 opens /etc/shadow, outside its seccomp allowlist
wait_bounded 120 "$runner" "ctr run of jl2 to end after its VMM died"
check "seccomp: the task exits (status 255) when its VMM is killed" 255 "$?"
cat "$D/jl2.out"
check_match "seccomp: containerd's log says the VMM was killed by SIGSYS" "jl2.*husk-vmm .*killed by SIGSYS" "$(grep -a 'sandbox died' "$D/containerd.log")"
check "seccomp: the killed VMM's jailer is gone" 0 "$(procs "husk-jailer .*--root ${sb2}jail ")"
ctr task rm jl2 >/dev/null 2>&1; ctr c rm jl2 >/dev/null 2>&1
fi
fi

# 11. sequential and parallel runs leave nothing behind
if want leaks; then
for i in $(seq "$seq_runs"); do ctr run --rm "${rt[@]}" $img q$i true || { echo "FAIL sequential run $i"; fails=$((fails + 1)); }; done
par=()
for i in $(seq "$par_runs"); do ctr run --rm "${rt[@]}" $img p$i true & par+=($!); done
for p in "${par[@]}"; do wait_bounded 300 "$p" "parallel run (pid $p)"; done
wait_until 30 "every shim to exit" eval '[ "$(procs "containerd-shim-husk-v2.*-address $D")" = 0 ]' 
check "no shim left" 0 "$(procs "containerd-shim-husk-v2.*-address $D")"
check "no jailer, VMM, virtiofsd or agent left" 0 "$(procs "$D/run/")"
check "no uid left taken" "" "$(ls "$D/run/jail-uids" 2>/dev/null)"
check "no mounts left" 0 "$(grep -cE " $D/(state|run)" /proc/mounts)"
check "no sandbox state left" "" "$(run_state)"
check "no task state left" "" "$(ls "$D/state/io.containerd.runtime.v2.task/$CONTAINERD_NAMESPACE" 2>/dev/null)"
check "no FIFOs left" 0 "$(find "$D/state" -type p 2>/dev/null | wc -l)"
left=0
for id in $(seq -f q%g "$seq_runs") $(seq -f p%g "$par_runs"); do [ -e "$(shim_socket "$id")" ] && left=$((left + 1)); done
check "no shim sockets left" 0 "$left"
fi
echo "SHIM_TEST_FAILS=$fails"
if [ "$fails" != 0 ]; then
  echo "--- containerd.log (with the shims' logs), tail:"
  tail -60 "$D/containerd.log"
fi
[ "$fails" = 0 ]
