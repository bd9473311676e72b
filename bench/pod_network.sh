#!/usr/bin/env bash
# A pod's network through husk beside runc, on the same kind of network in one run: for each, a
# network namespace as a CNI plugin leaves it (veth eth0 with the pod IP, its peer on the host with
# the gateway address) named by `ctr run --with-ns`. Measured: TCP throughput host→pod and pod→host
# (busybox httpd serving MiB from tmpfs, nc downloading; N transfers each, median), round-trip
# latency (ping p50/p99) and the ratios husk/runc. runc's container is on the veth itself; husk's
# frames cross tc redirects, a tap, virtio-net with offloads and the guest kernel.
# Boots microVMs: directly on hardware KVM, else inside the test host (emulated: compare ratios).
# usage: bench/pod_network.sh [N] [MiB]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
n=${1:-5}
mib=${2:-16}
out=${HUSK_BENCH_OUT:-$build/bench}

if [ -z "${HUSK_BENCH_INNER:-}" ]; then
  . "$src/scripts/lib/containerd.sh"
  ctd_testhost_bench "$src" "$build" "$out" pod_network 2400 "$n" "$mib"
  exit
fi

. "$src/bench/lib.sh"
. "$src/scripts/lib/containerd.sh"
mkdir -p "$out"
D=$(mktemp -d /tmp/husk-bench-net-XXXXXX)
CTD_DIR=$D CTD_SHIM_DIR=${HUSK_SHIM_DIR:-$build/shim}
cleanup() {
  ctd_cleanup
  for p in husk runc; do ip netns del "bench-$p" 2>/dev/null || true; done
}
trap cleanup EXIT
echo "{\"mode\": \"vm\", \"state_dir\": \"$D/run\", \"vmm\": \"${HUSK_VMM:-$build/vmm/husk-vmm}\", \"jailer\": \"${HUSK_JAILER:-$build/jailer/husk-jailer}\", \"kernel\": \"${HUSK_KERNEL:-$build/images/vmlinux}\", \"initramfs\": \"${HUSK_AGENT_INITRD:-$build/images/agent-initramfs.cpio}\", \"agent_timeout_ms\": 120000}" >"$D/shim.json"
ctd_start
ctr image import "${HUSK_OCI_IMAGE:-$build/images/busybox-oci.tar}" >/dev/null
img=docker.io/husk/busybox:latest
declare -A rt=([husk]="--snapshotter native --runtime io.containerd.husk.v2"
               [runc]="--snapshotter native --runtime io.containerd.runc.v2 ${HUSK_RUNC_NO_PIVOT:+--no-pivot}")
declare -A net=([husk]=1 [runc]=2)

# The host side serves MiB from tmpfs for host→pod.
mkdir -p "$D/www"
head -c $((mib << 20)) /dev/zero >"$D/www/big"
csv=$out/pod_network.csv
echo "runtime,metric,run,value" >"$csv"
for p in husk runc; do
  i=${net[$p]}
  ip netns add "bench-$p"
  ip link add "bh-$p" type veth peer name "bp-$p"
  ip link set "bp-$p" netns "bench-$p"
  ip -n "bench-$p" link set "bp-$p" name eth0
  ip -n "bench-$p" addr add "10.216.$i.2/24" dev eth0
  ip -n "bench-$p" link set eth0 up
  ip -n "bench-$p" link set lo up
  ip -n "bench-$p" route add default via "10.216.$i.1"
  ip addr add "10.216.$i.1/24" dev "bh-$p"
  ip link set "bh-$p" up
  busybox httpd -p "10.216.$i.1:8081" -h "$D/www"
  # shellcheck disable=SC2086
  ctr run -d ${rt[$p]} --with-ns "network:/var/run/netns/bench-$p" $img "net-$p" \
    sh -c "head -c $((mib << 20)) /dev/zero >/dev/shm/big && exec httpd -f -p 8080 -h /dev/shm" >/dev/null
  up() { [ "$(printf 'GET /big HTTP/1.0\r\n\r\n' | nc -w 30 "10.216.$1.2" 8080 2>/dev/null | wc -c)" -gt $((mib << 20)) ]; }
  wait_until 60 "$p's pod to serve" up "$i"
done

secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.6f", b - a}'; }
for r in $(seq "$n"); do
  for p in husk runc; do
    i=${net[$p]}
    # pod→host: the host downloads from the container.
    t0=$EPOCHREALTIME
    got=$(printf 'GET /big HTTP/1.0\r\n\r\n' | nc -w 60 "10.216.$i.2" 8080 | wc -c)
    t1=$EPOCHREALTIME
    [ "$got" -gt $((mib << 20)) ] || { echo "pod→host download from $p got $got bytes" >&2; exit 1; }
    echo "$p,pod_to_host_mibps,$r,$(awk -v m="$mib" -v s="$(secs "$t0" "$t1")" 'BEGIN{printf "%.2f", m/s}')" >>"$csv"
    # host→pod: the container downloads from the host into /dev/null (counting bytes in the
    # guest would measure the guest's CPU); busybox time ("real 0m 1.23s") reports inside the
    # container, so the exec's own cost is not counted.
    t=$(ctr task exec --exec-id "dl$r" "net-$p" sh -c \
      "time sh -c 'printf \"GET /big HTTP/1.0\\r\\n\\r\\n\" | nc -w 60 10.216.$i.1 8081 >/dev/null'" 2>&1 |
      awk '/^real/ {s = $2 $3; m = 0; if (s ~ /m/) {split(s, x, "m"); m = x[1]; s = x[2]} sub(/s$/, "", s); print m * 60 + s}')
    echo "$p,host_to_pod_mibps,$r,$(awk -v m="$mib" -v s="$t" 'BEGIN{printf "%.2f", (s > 0 ? m/s : 0)}')" >>"$csv"
  done
done
for p in husk runc; do
  i=${net[$p]}
  ping -c 40 -i 0.2 "10.216.$i.2" | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | awk -v p="$p" '{print p ",rtt_ms," NR "," $1}' >>"$csv"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b > 0 ? a/b : 0)}'; }
{
  echo "pod network, $n transfers of $mib MiB each way and 40 pings per runtime, one run (veth per pod, same host):"
  for m in pod_to_host_mibps host_to_pod_mibps; do
    grep ",$m," "$csv" | sed "s/,$m,/,/" >"$D/$m.csv"
    h=$(pct "$D/$m.csv" husk 0.5) r=$(pct "$D/$m.csv" runc 0.5)
    printf "  %-18s husk %8.1f MiB/s   runc %8.1f MiB/s   ratio %s\n" "${m%_mibps}" "$h" "$r" "$(ratio "$h" "$r")"
  done
  grep ',rtt_ms,' "$csv" | sed 's/,rtt_ms,/,/' >"$D/rtt.csv"
  for p in husk runc; do
    printf "  ping %-5s p50 %7.3f ms   p99 %7.3f ms\n" "$p" "$(pct "$D/rtt.csv" "$p" 0.5)" "$(pct "$D/rtt.csv" "$p" 0.99)"
  done
  printf "  latency ratio husk/runc: p50 %s\n" "$(ratio "$(pct "$D/rtt.csv" husk 0.5)" "$(pct "$D/rtt.csv" runc 0.5)")"
} | tee "$out/pod_network_summary.txt"
for p in husk runc; do ctr task kill -s KILL "net-$p" >/dev/null 2>&1 || true; done
