#!/usr/bin/env bash
# Pod start through containerd's CRI plugin, as the kubelet drives it: RunPodSandbox (CNI bridge +
# host-local, the local pause image) → CreateContainer + StartContainer of busybox `sleep`, until
# StartContainer returns, N times each, interleaved, with runtime handlers runc, husk (cold boot)
# and husk-template ("start": "template", the template made by an untimed first pod); each pod
# stopped and removed untimed. p50/p90 and the ratios against runc. Runs where microVMs boot:
# directly on hardware KVM, else in the test host (absolute times emulated: compare the ratios).
# Writes $out/cri_start.csv (handler,run,ms) and cri_start.txt.
# usage: bench/cri_start.sh [N]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
n=${1:-5}
out=${HUSK_BENCH_OUT:-$build/bench}

if [ -z "${HUSK_BENCH_INNER:-}" ]; then
  . "$src/scripts/lib/containerd.sh"
  mkdir -p "$out"
  script=$(mktemp)
  trap 'rm -f "$script"' EXIT
  {
    ctd_testhost_env "$src"
    cri_testhost_env "$build"
    echo "export HUSK_BENCH_INNER=1 HUSK_BENCH_OUT=/tmp/bench"
    echo "bash \$HUSK_SRC/bench/cri_start.sh $n"
  } >"$script"
  # shellcheck disable=SC2046  # one --add pair per line, no spaces in the paths
  HUSK_BUILD=$build "$src/tests/testhost/run.sh" --timeout 3000 --mem 4096 \
    --add "$src/bench/cri_start.sh:/husk/src/bench/cri_start.sh" --add "$src/bench/lib.sh:/husk/src/bench/lib.sh" \
    $(cri_testhost_adds "$build") $(ctd_testhost_adds "$build") "$script" | tee "$out/cri_start.txt"
  rc=${PIPESTATUS[0]}
  sed -n '/^CSV:/,$p' "$out/cri_start.txt" | sed '1d; s/^  //' >"$out/cri_start.csv"
  exit "$rc"
fi

. "$src/bench/lib.sh"
. "$src/scripts/lib/containerd.sh"
mkdir -p "$out"
D=$(mktemp -d /tmp/husk-bench-cri-XXXXXX)
CTD_DIR=$D CTD_SHIM_DIR=${HUSK_SHIM_DIR:-$build/shim} CTD_CRI=1
shim_json() {  # shim_json START: the husk runtime's config for "start": START
  echo "{\"mode\": \"vm\", \"start\": \"$1\", \"state_dir\": \"$D/run\", \"vmm\": \"${HUSK_VMM:-$build/vmm/husk-vmm}\", \"jailer\": \"${HUSK_JAILER:-$build/jailer/husk-jailer}\", \"kernel\": \"${HUSK_KERNEL:-$build/images/vmlinux}\", \"initramfs\": \"${HUSK_AGENT_INITRD:-$build/images/agent-initramfs.cpio}\", \"agent_timeout_ms\": 120000}"
}
shim_json boot >"$D/shim.json"
shim_json template >"$D/template.json"
# ctd_start's CRI configuration plus a second husk handler whose options name the template config.
CTD_CRI_EXTRA="[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.husk-template]
  runtime_type = \"io.containerd.husk.v2\"
  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.husk-template.options]
    ConfigPath = \"$D/template.json\""
mkdir -p "$D/logs"
cni_bridge_conf huskbench 10.218.0.0/24
trap 'ctd_cleanup || echo "cleanup: the benchmark left something of its containerd behind" >&2' EXIT  # the figures stand
ctd_start
ctr -n k8s.io image import "${HUSK_OCI_IMAGE:-$build/images/busybox-oci.tar}" >/dev/null
ctr -n k8s.io image import "${HUSK_PAUSE_IMAGE:-$build/images/pause-oci.tar}" >/dev/null
cri() { bounded 300 "$HUSK_CRI" -r "unix://$D/containerd.sock" -t 290 "$@"; }
cat >"$D/c.json" <<J
{"metadata": {"name": "app"}, "image": {"image": "docker.io/husk/busybox:latest"}, "command": ["sleep", "100000"],
 "log_path": "app.log", "linux": {}}
J
# pod HANDLER NAME: RunPodSandbox → container started; prints the milliseconds; removes the pod.
pod() {
  cat >"$D/$2.pod.json" <<J
{"metadata": {"name": "$2", "namespace": "default", "uid": "uid-$2", "attempt": 0}, "hostname": "$2",
 "log_directory": "$D/logs/$2", "linux": {}}
J
  local t0=$EPOCHREALTIME p c
  p=$(cri runp "$D/$2.pod.json" "$1")
  c=$(cri create "$p" "$D/c.json" "$D/$2.pod.json")
  cri start "$c" >/dev/null
  local t1=$EPOCHREALTIME
  [ "$(cri inspect "$c" | sed -n 's/.*"state": "\([A-Z_]*\)".*/\1/p' | head -1)" = CONTAINER_RUNNING ] ||
    { echo "pod $2 ($1): the container is not running" >&2; return 1; }
  cri stopp "$p" >/dev/null
  cri rmp "$p" >/dev/null
  ms "$t0" "$t1"
}
# Untimed: page cache, the images' snapshots, and the template itself.
pod husk-template warm-t >/dev/null
pod husk warm-h >/dev/null
pod runc warm-r >/dev/null
csv=$out/cri_start.csv
echo "handler,run,ms" >"$csv"
for i in $(seq "$n"); do
  for h in runc husk husk-template; do echo "$h,$i,$(pod "$h" "$h-$i")" >>"$csv"; done
done
ratio() { awk -v a="$(pct "$csv" "$1" 0.5)" -v b="$(pct "$csv" runc 0.5)" 'BEGIN {printf "%.2f", a / b}'; }
{
  echo "CRI RunPodSandbox -> CreateContainer -> StartContainer returned, $n pods each, interleaved (emulated times where there is no hardware KVM: compare ratios):"
  for h in runc husk husk-template; do
    printf "  %-14s p50 %8.1f ms   p90 %8.1f ms\n" "$h" "$(pct "$csv" $h 0.5)" "$(pct "$csv" $h 0.9)"
  done
  echo "  husk/runc: p50 $(ratio husk)   husk-template/runc: p50 $(ratio husk-template)"
  echo "CSV:"
  sed 's/^/  /' "$csv"
} | tee "$out/cri_start.txt"
