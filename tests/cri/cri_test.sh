#!/usr/bin/env bash
# The Kubernetes path, as the kubelet drives it: containerd's CRI plugin with runtime handler
# "husk", CNI (Debian's bridge + host-local + loopback plugins), a local pause image, and
# husk-cri (tests/cri/husk_cri.cpp) as the kubelet. Runs where microVMs boot (tests/cri/run_vm.sh:
# directly on hardware KVM, else in the test host). Prints PASS/FAIL lines, then
# CRI_TEST_FAILS=<n>; exits non-zero on any failure.
# env: HUSK_SRC, HUSK_SHIM_DIR, HUSK_VMM, HUSK_JAILER, HUSK_KERNEL, HUSK_AGENT_INITRD,
#      HUSK_OCI_IMAGE, HUSK_PAUSE_IMAGE, HUSK_CRI (the client)
set -uo pipefail
. "$HUSK_SRC/scripts/lib/containerd.sh"
D=$(mktemp -d /tmp/husk-cri-XXXXXX)
CTD_DIR=$D CTD_SHIM_DIR=$HUSK_SHIM_DIR CTD_CRI=1
fails=0
check() { if [ "$2" = "$3" ]; then echo "PASS $1"; else echo "FAIL $1: expected [$2] got [$3]"; fails=$((fails + 1)); fi; }
check_match() { if grep -Eq -- "$2" <<<"$3"; then echo "PASS $1"; else echo "FAIL $1: [$3] does not match /$2/"; fails=$((fails + 1)); fi; }
cat >"$D/shim.json" <<J
{"mode": "vm", "state_dir": "$D/run", "vmm": "$HUSK_VMM", "jailer": "$HUSK_JAILER", "kernel": "$HUSK_KERNEL", "initramfs": "$HUSK_AGENT_INITRD",
 "virtiofsd": "${HUSK_VIRTIOFSD:-/usr/lib/qemu/virtiofsd}", "vcpus": 1, "memory_mib": 256, "agent_timeout_ms": 120000}
J
mkdir -p "$D/logs"
cni_bridge_conf huskcni 10.217.0.0/24 portmap
trap ctd_cleanup EXIT
ctd_start
ctr -n k8s.io image import "$HUSK_OCI_IMAGE" >/dev/null
ctr -n k8s.io image import "$HUSK_PAUSE_IMAGE" >/dev/null
cri() { bounded 120 "$HUSK_CRI" -r "unix://$D/containerd.sock" -t 110 "$@"; }
field() { sed -n "s/.*\"$1\": \"\\{0,1\\}\\([^\",]*\\)\"\\{0,1\\},\\{0,1\\}$/\\1/p" | head -1; }  # field NAME < JSON

check_match "cri: the CRI plugin answers (Version)" '"runtime_name": "containerd"' "$(cri version)"

# A pod as the kubelet makes one: metadata, hostname, log directory (and host ports, as a pod
# spec's hostPort gives them); runtime handler husk.
pod_json() {  # pod_json NAME [PORT_MAPPINGS_JSON]
  cat >"$D/$1.pod.json" <<J
{"metadata": {"name": "$1", "namespace": "default", "uid": "uid-$1", "attempt": 0}, "hostname": "$1",
 "log_directory": "$D/logs/$1", "port_mappings": [${2:-}], "linux": {}}
J
}
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
container_json() {  # container_json POD NAME CMD...: a busybox container whose log is NAME.log
  local pod=$1 name=$2 args="" a
  shift 2
  for a in "$@"; do args+="$(json_str "$a"),"; done
  cat >"$D/$pod.$name.json" <<J
{"metadata": {"name": "$name"}, "image": {"image": "docker.io/husk/busybox:latest"},
 "command": [${args%,}], "log_path": "$name.log", "linux": {}}
J
}
pod_json web '{"protocol": "TCP", "container_port": 8080, "host_port": 30080}'
t0=$EPOCHREALTIME
web=$(cri runp "$D/web.pod.json" husk)
check_match "cri: RunPodSandbox with handler husk returns an id" '^[0-9a-f]{64}$' "$web"
if [ -z "$web" ]; then
  echo "containerd.log:" && grep -v 'level=info' "$D/containerd.log" | tail -30
  echo "CRI_TEST_FAILS=$((fails + 1))"
  exit 1
fi
status=$(cri inspectp "$web")
check "cri: PodSandboxStatus READY" SANDBOX_READY "$(field state <<<"$status")"
check "cri: PodSandboxStatus names the handler" husk "$(field runtime_handler <<<"$status")"
web_ip=$(field ip <<<"$status")
check_match "cri: the pod IP comes from CNI (host-local range)" '^10\.217\.0\.[0-9]+$' "$web_ip"
container_json web httpd sh -c 'mkdir -p /www && echo hello-from-a-husk-pod >/www/index.html && head -c 200000 /dev/urandom >/www/blob && md5sum </www/blob | cut -d" " -f1 >/www/sum && echo httpd-starting && exec httpd -f -p 8080 -h /www'
httpd=$(cri create "$web" "$D/web.httpd.json" "$D/web.pod.json")
cri start "$httpd"
check "cri: ContainerStatus RUNNING" CONTAINER_RUNNING "$(cri inspect "$httpd" | field state)"
printf '%s\n' "web: RunPodSandbox -> container started: $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", (b - a) * 1000}') ms"
get() { printf 'GET %s HTTP/1.0\r\n\r\n' "$2" | nc -w 30 "$1" "${3:-8080}" 2>/dev/null; }  # get IP PATH [PORT]
serving() { get "$web_ip" /sum | tail -n1 | grep -Eq '^[0-9a-f]{32}$'; }
wait_until 30 "the pod to serve on $web_ip:8080" serving
sum=$(get "$web_ip" /sum | tail -n1)
check "cri: the host fetches a file from the pod IP, byte-identical" "$sum" "$(get "$web_ip" /blob | tail -c 200000 | md5sum | cut -d' ' -f1)"
# hostPort: the portmap plugin DNATs the node's port 30080 to the pod IP's 8080, which the tc
# redirect carries into the guest; the node's own addresses (the bridge's gateway) and localhost.
gw=${web_ip%.*}.1
check "cri: the host port is a DNAT rule to the pod IP" 1 "$(iptables -t nat -S 2>/dev/null | grep -c -- "-j DNAT --to-destination $web_ip:8080")"
check "cri: a host port (CNI portmap) reaches the pod through the node's address" hello-from-a-husk-pod "$(get "$gw" /index.html 30080 | tail -n1)"
check "cri: a host port reaches the pod through localhost" hello-from-a-husk-pod "$(get 127.0.0.1 /index.html 30080 | tail -n1)"
check "cri: a file through the host port, byte-identical" "$sum" "$(get "$gw" /blob 30080 | tail -c 200000 | md5sum | cut -d' ' -f1)"
container_json web client sh -c 'echo client-started; exec sleep 100000'
client=$(cri create "$web" "$D/web.client.json" "$D/web.pod.json")
cri start "$client"
check "cri: a second container of the pod reaches the first over localhost" hello-from-a-husk-pod \
  "$(cri exec "$client" sh -c "printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 20 127.0.0.1 8080 | tail -n1")"
out=$(cri exec "$client" sh -c 'echo to-stdout; echo to-stderr >&2; exit 7' 2>"$D/exec.err")
check "cri: ExecSync exit code" 7 "$?"
check "cri: ExecSync stdout" to-stdout "$out"
check "cri: ExecSync stderr" to-stderr "$(cat "$D/exec.err")"
# Exec through containerd's streaming server, as `kubectl exec -i` and `kubectl exec -it` do.
out=$(cri stream -i $'hello-stdin\n' "$client" sh -c 'read l; echo got:$l; echo on-stderr >&2; exit 3' 2>"$D/stream.err")
check "cri: Exec (streaming) exit code" 3 "$?"
check "cri: Exec (streaming) stdin reaches the command, its stdout comes back" got:hello-stdin "$out"
check "cri: Exec (streaming) stderr" on-stderr "$(cat "$D/stream.err")"
# -it, an interactive shell on a terminal (containerd 1.6 over WebSocket needs -i with -t: it
# takes the unrequested stdin channel's EOF as the end of input and closes the terminal's output).
out=$(cri stream -tty -i $'tty\nexit 4\n' "$client" sh)
check "cri: Exec (streaming, -it) exit code" 4 "$?"
check_match "cri: Exec (streaming, -it) runs a shell on a terminal" '^/dev/pts/[0-9]+' "$out"
# Attach, as `kubectl attach -i`: a container that reads its stdin (stdin and stdin_once set).
cat >"$D/web.reader.json" <<J
{"metadata": {"name": "reader"}, "image": {"image": "docker.io/husk/busybox:latest"},
 "command": ["sh", "-c", "read l; echo attached:\$l; exit 5"], "log_path": "reader.log", "stdin": true, "stdin_once": true, "linux": {}}
J
reader=$(cri create "$web" "$D/web.reader.json" "$D/web.pod.json")
cri start "$reader"
check "cri: Attach: stdin reaches the container's process, its stdout comes back" attached:hello-attach \
  "$(cri attach -i $'hello-attach\n' "$reader" | tr -d '\r' | grep '^attached:')"
reader_exited() { [ "$(cri inspect "$reader" | field state)" = CONTAINER_EXITED ]; }
wait_until 30 "the attached container to exit" reader_exited
check "cri: the attached container exits with its own code" 5 "$(cri inspect "$reader" | field exit_code)"
check "cri: the pod runs in its own kernel" 1 "$([ "$(cri exec "$client" cat /proc/sys/kernel/random/boot_id)" != "$(cat /proc/sys/kernel/random/boot_id)" ] && echo 1)"
check "cri: ListContainers: both running in the pod" 2 "$(cri ps "$web" | grep -c ' RUNNING ')"
check "cri: ListPodSandbox: the pod ready, handler husk" 1 "$(cri pods | grep -c "^$web READY web husk$")"
logged() { grep -q 'stdout F client-started' "$D/logs/web/client.log" 2>/dev/null; }
wait_until 10 "the client's log line" logged
check "cri: stdout reaches the CRI log path" 1 "$(grep -c 'stdout F client-started' "$D/logs/web/client.log" 2>/dev/null)"
netns=$(ls /var/run/netns 2>/dev/null | grep -c '^cni-')
check "cri: one CNI network namespace, with our tap in it" "1 1" "$netns $(for n in /var/run/netns/cni-*; do ip -n "$(basename "$n")" -o link show | grep -c tap0_husk; done)"

# A second pod: another IP, and it reaches the first across the CNI bridge.
pod_json other
other=$(cri runp "$D/other.pod.json" husk)
other_ip=$(cri inspectp "$other" | field ip)
check "cri: two pods get different IPs" 1 "$([ -n "$other_ip" ] && [ "$other_ip" != "$web_ip" ] && echo 1)"
container_json other peer sleep 100000
peer=$(cri create "$other" "$D/other.peer.json" "$D/other.pod.json")
cri start "$peer"
check "cri: a pod reaches another pod by its IP" hello-from-a-husk-pod \
  "$(cri exec "$peer" sh -c "printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 20 $web_ip 8080 | tail -n1")"

# hostNetwork: true — the CRI plugin gives the sandbox no network namespace; a microVM cannot
# join the host's, so the shim refuses it by name (the final checks see nothing of it left).
cat >"$D/hostnet.pod.json" <<J
{"metadata": {"name": "hostnet", "namespace": "default", "uid": "uid-hostnet", "attempt": 0}, "hostname": "hostnet",
 "log_directory": "$D/logs/hostnet", "linux": {"security_context": {"namespace_options": {"network": "NODE"}}}}
J
hostnet=$(cri runp "$D/hostnet.pod.json" husk 2>&1)
check_match "cri: a hostNetwork pod is refused, by name" "hostNetwork" "$hostnet"
check "cri: the refused pod is not listed" 2 "$(cri pods | wc -l)"

# Teardown as the kubelet does it: stop, then remove; nothing stays.
for p in "$other" "$web"; do
  cri stopp "$p"
  cri rmp "$p"
done
check "cri: no pod left" 0 "$(cri pods | wc -l)"
gone() { [ -z "$(pids_of "containerd-shim-husk-v2.*-address $D|husk-vmm|virtiofsd.*$D/run")" ]; }
wait_until 30 "shims, VMMs and virtiofsd to exit" gone
check "cri: no shim, VMM or virtiofsd left" "" "$(pids_of "containerd-shim-husk-v2.*-address $D|husk-vmm|virtiofsd.*$D/run")"
check "cri: no host-port NAT rule left" 0 "$(iptables -t nat -S 2>/dev/null | grep -c 'CNI-DN-')"
check "cri: the host port no longer answers" "" "$(get "$gw" /index.html 30080)"
check "cri: no CNI network namespace left" 0 "$(ls /var/run/netns 2>/dev/null | grep -c '^cni-')"
check "cri: no sandbox state left" "" "$(ls "$D/run" 2>/dev/null | grep -v '^jail-uids$')"
check "cri: no mount left under the sandbox state" 0 "$(grep -c " $D/run" /proc/mounts)"

echo "CRI_TEST_FAILS=$fails"
[ "$fails" = 0 ]
