#!/usr/bin/env bash
# `ctr run --rm IMAGE id true`, N times each, through containerd-shim-husk-v2 and through
# containerd-shim-runc-v2 on the same private containerd, interleaved: p50/p90 time to exit
# and the ratio. MODE host (default) runs husk-agent on the host (the shim + agent path without
# a VM, on this machine directly); MODE vm boots a microVM per run (needs a KVM that boots
# Linux: run through tests/testhost/run.sh, where times are emulated).
# usage: bench/shim_start.sh [N] [host|vm]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/scripts/lib/stats.sh"
build=${HUSK_BUILD:-$src/build}
n=${1:-30}
mode=${2:-host}
out=${HUSK_BENCH_OUT:-$build/bench}
mkdir -p "$out"
D=$(mktemp -d /tmp/husk-bench-ctd-XXXXXX)
ctd=
cleanup() { [ -n "$ctd" ] && kill "$ctd" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
cat >"$D/config.toml" <<T
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$D/containerd.sock"
T
if [ "$mode" = vm ]; then
  echo "{\"mode\": \"vm\", \"vmm\": \"${HUSK_VMM:-$build/vmm/husk-vmm}\", \"kernel\": \"${HUSK_KERNEL:-$build/images/vmlinux}\", \"initramfs\": \"${HUSK_AGENT_INITRD:-$build/images/agent-initramfs.cpio}\", \"agent_timeout_ms\": 120000}" >"$D/shim.json"
else
  echo "{\"mode\": \"host\", \"agent\": \"$build/guest-agent/husk-agent\"}" >"$D/shim.json"
fi
PATH=${HUSK_SHIM_DIR:-$build/shim}:$PATH HUSK_SHIM_CONFIG=$D/shim.json containerd --config "$D/config.toml" >"$D/containerd.log" 2>&1 &
ctd=$!
for i in $(seq 100); do [ -S "$D/containerd.sock" ] && break; sleep 0.1; done
ctr() { command ctr --address "$D/containerd.sock" "$@"; }
ctr image import "${HUSK_OCI_IMAGE:-$build/images/busybox-oci.tar}" >/dev/null
img=docker.io/husk/busybox:latest
echo "shim,run,ms" >"$out/shim_start.csv"
for i in $(seq "$n"); do
  t0=$EPOCHREALTIME
  ctr run --rm --snapshotter native --runtime io.containerd.husk.v2 $img h$i true
  t1=$EPOCHREALTIME
  ctr run --rm --snapshotter native --runtime io.containerd.runc.v2 ${HUSK_RUNC_NO_PIVOT:+--no-pivot} $img r$i true
  t2=$EPOCHREALTIME
  echo "husk,$i,$(ms "$t0" "$t1")" >>"$out/shim_start.csv"
  echo "runc,$i,$(ms "$t1" "$t2")" >>"$out/shim_start.csv"
done
{
  echo "ctr run --rm <busybox> id true, $n runs each, same containerd (husk shim in $mode mode):"
  printf "  io.containerd.husk.v2   p50 %8.1f ms   p90 %8.1f ms\n" "$(pct "$out/shim_start.csv" husk 0.5)" "$(pct "$out/shim_start.csv" husk 0.9)"
  printf "  io.containerd.runc.v2   p50 %8.1f ms   p90 %8.1f ms\n" "$(pct "$out/shim_start.csv" runc 0.5)" "$(pct "$out/shim_start.csv" runc 0.9)"
  printf "  ratio husk/runc: p50 %.2f   p90 %.2f\n" \
    "$(awk -v a="$(pct "$out/shim_start.csv" husk 0.5)" -v b="$(pct "$out/shim_start.csv" runc 0.5)" 'BEGIN{print a/b}')" \
    "$(awk -v a="$(pct "$out/shim_start.csv" husk 0.9)" -v b="$(pct "$out/shim_start.csv" runc 0.9)" 'BEGIN{print a/b}')"
} | tee "$out/shim_start.txt"
