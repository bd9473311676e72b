#!/usr/bin/env bash
# `ctr run --rm IMAGE id true`, N times each, through containerd-shim-husk-v2 and through
# containerd-shim-runc-v2 on the same private containerd, interleaved: p50/p90 time to exit and
# the ratio; where husk's time goes (the shim's own phase timings, medians); and the host
# memory of one running sandbox (shim + VMM + virtiofsd, RSS and PSS) beside runc's shim. In VM
# mode also husk with the jail and husk-vmm's seccomp filters off, interleaved: what they cost.
# MODE vm (default) boots a microVM per run: directly on hardware KVM, else inside the test
# host (QEMU TCG: absolute times are emulated, compare the ratios). MODE host runs husk-agent
# on the host: the shim + agent path without a VM, on this machine directly.
# usage: bench/shim_start.sh [N] [vm|host]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
n=${1:-20}
mode=${2:-vm}
out=${HUSK_BENCH_OUT:-$build/bench}

if [ "$mode" = vm ] && [ -z "${HUSK_BENCH_INNER:-}" ]; then
  . "$src/scripts/lib/containerd.sh"
  ctd_testhost_bench "$src" "$build" "$out" shim_start 3000 "$n" vm
  exit
fi

. "$src/bench/lib.sh"
. "$src/scripts/lib/containerd.sh"
mkdir -p "$out"
D=$(mktemp -d /tmp/husk-bench-ctd-XXXXXX)
CTD_DIR=$D CTD_SHIM_DIR=${HUSK_SHIM_DIR:-$build/shim}
trap 'ctd_cleanup || echo "cleanup: the benchmark left something of its containerd behind" >&2' EXIT  # the figures stand
if [ "$mode" = vm ]; then
  echo "{\"mode\": \"vm\", \"state_dir\": \"$D/run\", \"vmm\": \"${HUSK_VMM:-$build/vmm/husk-vmm}\", \"jailer\": \"${HUSK_JAILER:-$build/jailer/husk-jailer}\", \"kernel\": \"${HUSK_KERNEL:-$build/images/vmlinux}\", \"initramfs\": \"${HUSK_AGENT_INITRD:-$build/images/agent-initramfs.cpio}\", \"agent_timeout_ms\": 120000, \"log_level\": \"debug\"}" >"$D/shim.json"
else
  echo "{\"mode\": \"host\", \"state_dir\": \"$D/run\", \"agent\": \"$build/guest-agent/husk-agent\", \"log_level\": \"debug\"}" >"$D/shim.json"
fi
sed 's/^{/{"jail": false, "vmm_seccomp": "off", /' "$D/shim.json" >"$D/nojail.json"
ctd_start
ctr image import "${HUSK_OCI_IMAGE:-$build/images/busybox-oci.tar}" >/dev/null
img=docker.io/husk/busybox:latest
husk=(--snapshotter native --runtime io.containerd.husk.v2)
runc=(--snapshotter native --runtime io.containerd.runc.v2 ${HUSK_RUNC_NO_PIVOT:+--no-pivot})
# One untimed run each: the first pays for page cache and snapshot setup.
ctr run --rm "${husk[@]}" $img warm-h true
ctr run --rm "${runc[@]}" $img warm-r true
csv=$out/shim_start_$mode.csv
echo "shim,run,ms" >"$csv"
for i in $(seq "$n"); do
  t0=$EPOCHREALTIME
  ctr run --rm "${husk[@]}" $img h$i true
  t1=$EPOCHREALTIME
  ctr run --rm "${runc[@]}" $img r$i true
  t2=$EPOCHREALTIME
  echo "husk,$i,$(ms "$t0" "$t1")" >>"$csv"
  echo "runc,$i,$(ms "$t1" "$t2")" >>"$csv"
  if [ "$mode" = vm ]; then
    ctr run --rm "${husk[@]}" --runtime-config-path "$D/nojail.json" $img n$i true
    echo "husk-nojail,$i,$(ms "$t2" "$EPOCHREALTIME")" >>"$csv"
  fi
done

# The shim's phase timings (debug log, copied into containerd's log) for the timed runs.
phases=$out/shim_phases_$mode.csv
echo "phase,run,ms" >"$phases"
grep -E 'timing h[0-9]+:' "$D/containerd.log" | sed -E 's/.*timing h([0-9]+): /\1 /' | while IFS= read -r line; do
  run=${line%% *}
  printf '%s\n' "${line#* }" | grep -oE '(sandbox|virtiofsd|vmm|boot\+agent|agent|rootfs|agent create|agent start|delete) [0-9.]+ ms' |
    while read -r name; do
      ph=${name% ms}; v=${ph##* }; ph=${ph% *}
      echo "$ph,$run,$v" >>"$phases"
    done
done

# Memory of one running sandbox beside one runc container (both idle in `sleep`).
ctr run -d "${husk[@]}" $img mem-h sleep 600 >/dev/null
ctr run -d "${runc[@]}" $img mem-r sleep 600 >/dev/null
sleep 2
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/$3" 2>/dev/null; }
jailed() {  # jailed REGEX: the helpers whose husk-jailer's command line matches REGEX
  local j
  for j in $(pids_of "husk-jailer .*$1"); do cat "/proc/$j/task/$j/children" 2>/dev/null; done
}
mem_row() {  # mem_row LABEL REGEX GROUP [PIDS]: processes matching REGEX, or PIDS
  local p rss=0 pss=0
  for p in ${4:-$(pids_of "$2")}; do
    rss=$((rss + $(kib "$p" VmRSS status))); pss=$((pss + $(kib "$p" Pss smaps_rollup)))
  done
  printf "  %-34s RSS %7.1f MiB   PSS %7.1f MiB\n" "$1" "$(awk -v k=$rss 'BEGIN{print k/1024}')" "$(awk -v k=$pss 'BEGIN{print k/1024}')"
  echo "$rss" >>"$D/rss-$3"
}
{
  echo "ctr run --rm <busybox> id true, $n runs each, same containerd (husk shim in $mode mode):"
  printf "  io.containerd.husk.v2   p50 %8.1f ms   p90 %8.1f ms\n" "$(pct "$csv" husk 0.5)" "$(pct "$csv" husk 0.9)"
  printf "  io.containerd.runc.v2   p50 %8.1f ms   p90 %8.1f ms\n" "$(pct "$csv" runc 0.5)" "$(pct "$csv" runc 0.9)"
  if [ "$mode" = vm ]; then
    printf "  husk, jail and seccomp off  p50 %8.1f ms   p90 %8.1f ms   (the jail and filters cost %+.1f ms at p50)\n" \
      "$(pct "$csv" husk-nojail 0.5)" "$(pct "$csv" husk-nojail 0.9)" \
      "$(awk -v a="$(pct "$csv" husk 0.5)" -v b="$(pct "$csv" husk-nojail 0.5)" 'BEGIN{print a-b}')"
  fi
  printf "  ratio husk/runc: p50 %.2f   p90 %.2f\n" \
    "$(awk -v a="$(pct "$csv" husk 0.5)" -v b="$(pct "$csv" runc 0.5)" 'BEGIN{print a/b}')" \
    "$(awk -v a="$(pct "$csv" husk 0.9)" -v b="$(pct "$csv" runc 0.9)" 'BEGIN{print a/b}')"
  echo "where husk's time goes (medians; the rest is containerd, ctr and the shim's start):"
  for ph in sandbox virtiofsd vmm boot+agent agent rootfs "agent create" "agent start" delete; do
    grep -q "^$ph," "$phases" && printf "  %-14s %8.1f ms\n" "$ph" "$(pct "$phases" "$ph" 0.5)"
  done
  echo "host memory of one idle sandbox vs runc (sleep 600 in each):"
  mem_row "husk shim" "containerd-shim-husk-v2.*-address $D" husk
  if [ "$mode" = vm ]; then
    mem_row "husk-vmm (incl. touched guest RAM)" - husk "$(jailed "--root $D/run/")"
    mem_row "husk-jailers (2)" "husk-jailer .*$D/run/" husk
    mem_row "virtiofsd" "virtiofsd.*$D/run/" husk
  else
    mem_row "husk-agent" "husk-agent.*$D/run/" husk
  fi
  mem_row "runc shim" "containerd-shim-runc-v2.*-address $D" runc
  printf "  per-sandbox total: husk %.1f MiB RSS vs runc shim %.1f MiB\n" \
    "$(awk '{s+=$1} END {print s/1024}' "$D/rss-husk")" "$(awk '{s+=$1} END {print s/1024}' "$D/rss-runc")"
} | tee "$out/shim_start_$mode.txt"
# Cleanup only (ctd_cleanup stops whatever is left): a task still stopping must not fail the run.
ctr task kill -s KILL mem-h || true; ctr task kill -s KILL mem-r || true
gone() { [ -z "$(ctr task ls | awk '$1 == "mem-h" || $1 == "mem-r" {print $3}' | grep -v STOPPED)" ]; }
wait_until 30 "the memory probes to stop" gone || true
ctr task rm mem-h >/dev/null 2>&1 || true; ctr task rm mem-r >/dev/null 2>&1 || true
ctr c rm mem-h mem-r >/dev/null 2>&1 || true
