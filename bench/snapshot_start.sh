#!/usr/bin/env bash
# Sandboxes from template snapshots against cold boots, in one run (inside the test host where
# no hardware KVM boots guests: absolute times are emulated, compare the ratios):
#  1. `ctr run --rm busybox true`, N times each, interleaved, on one containerd: husk cold
#     ("start": "boot"), husk from a template ("start": "template", the template made before the
#     timed runs) and containerd-shim-runc-v2; p50/p90 and ratios; the shim's phases.
#  2. The VM alone (with virtio-fs, as the shim runs it): husk-vmm exec to the agent's first
#     answer, booting vs restoring the template, N each, and exec to the first KVM_RUN.
#  3. Host memory of 10 idle sandboxes (sleep 600) per mode: PSS of shim + husk-vmm + jailers +
#     virtiofsd per sandbox (restored guests share the template's unwritten pages, which PSS
#     counts once), and RSS.
# Writes $out/snapshot_start.csv (mode,run,ms), snapshot_restore.csv, snapshot_memory.csv and a
# plot (gnuplot, when present).
# usage: bench/snapshot_start.sh [N] [SANDBOXES]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
n=${1:-10}
sandboxes=${2:-10}
out=${HUSK_BENCH_OUT:-$build/bench}

if [ -z "${HUSK_BENCH_INNER:-}" ]; then
  . "$src/scripts/lib/containerd.sh"
  rc=0
  HUSK_BENCH_MEM=${HUSK_BENCH_MEM:-6144} ctd_testhost_bench "$src" "$build" "$out" snapshot_start 3000 "$n" "$sandboxes" || rc=$?
  # A failure after the summary was printed (during cleanup) still leaves figures to keep.
  grep -q '^CSV:' "$out/snapshot_start.txt" 2>/dev/null || exit "$((rc ? rc : 1))"
  # The CSVs were written in the test host; they came back in the summary: split them out.
  awk '/^CSV:/ {on = 1; next} on && /^  (mode,run|how,run|mode,sandboxes)/ {f = $1 ~ /^how/ ? "restore" : $1 ~ /sandboxes/ ? "memory" : "start"}
       on && /^  / {sub(/^  /, ""); print > (dir "/snapshot_" f ".csv")}' dir="$out" "$out/snapshot_start.txt"
  if command -v gnuplot >/dev/null && [ -s "$out/snapshot_start.csv" ]; then
    for m in cold template runc; do awk -F, -v m=$m '$1 == m {print $2, $3}' "$out/snapshot_start.csv" >"$out/snapshot_$m.dat"; done
    gnuplot <<PLOT
set terminal png size 900,500
set output "$out/snapshot_start.png"
set title "ctr run --rm busybox true (test host, emulated)"
set xlabel "run"
set ylabel "ms"
set yrange [0:*]
plot "$out/snapshot_cold.dat" with linespoints title "husk, cold boot", \
     "$out/snapshot_template.dat" with linespoints title "husk, from a template", \
     "$out/snapshot_runc.dat" with linespoints title "runc"
PLOT
    echo "plot: $out/snapshot_start.png  csv: $out/snapshot_start.csv $out/snapshot_restore.csv $out/snapshot_memory.csv"
  fi
  exit "$rc"
fi

. "$src/bench/lib.sh"
. "$src/scripts/lib/containerd.sh"
mkdir -p "$out"
D=$(mktemp -d /tmp/husk-bench-snap-XXXXXX)
CTD_DIR=$D CTD_SHIM_DIR=${HUSK_SHIM_DIR:-$build/shim}
trap 'ctd_cleanup || echo "cleanup: the benchmark left something of its containerd behind" >&2' EXIT  # the figures stand
vmm=${HUSK_VMM:-$build/vmm/husk-vmm}
kernel=${HUSK_KERNEL:-$build/images/vmlinux}
initrd=${HUSK_AGENT_INITRD:-$build/images/agent-initramfs.cpio}
echo "{\"mode\": \"vm\", \"state_dir\": \"$D/run\", \"vmm\": \"$vmm\", \"jailer\": \"${HUSK_JAILER:-$build/jailer/husk-jailer}\", \"kernel\": \"$kernel\", \"initramfs\": \"$initrd\", \"agent_timeout_ms\": 600000, \"log_level\": \"debug\"}" >"$D/cold.json"
sed 's/^{/{"start": "template", /' "$D/cold.json" >"$D/template.json"
ctd_start
ctr image import "${HUSK_OCI_IMAGE:-$build/images/busybox-oci.tar}" >/dev/null
img=docker.io/husk/busybox:latest
cold=(--snapshotter native --runtime io.containerd.husk.v2 --runtime-config-path "$D/cold.json")
tmpl=(--snapshotter native --runtime io.containerd.husk.v2 --runtime-config-path "$D/template.json")
runc=(--snapshotter native --runtime io.containerd.runc.v2 ${HUSK_RUNC_NO_PIVOT:+--no-pivot})
# Untimed: page cache, snapshotter, and the template itself.
t0=$EPOCHREALTIME
ctr run --rm "${tmpl[@]}" $img warm-t true
template_ms=$(ms "$t0" "$EPOCHREALTIME")
ctr run --rm "${cold[@]}" $img warm-c true
ctr run --rm "${runc[@]}" $img warm-r true

csv=$out/snapshot_start.csv
echo "mode,run,ms" >"$csv"
for i in $(seq "$n"); do
  t0=$EPOCHREALTIME
  ctr run --rm "${cold[@]}" $img c$i true
  t1=$EPOCHREALTIME
  ctr run --rm "${tmpl[@]}" $img t$i true
  t2=$EPOCHREALTIME
  ctr run --rm "${runc[@]}" $img r$i true
  t3=$EPOCHREALTIME
  echo "cold,$i,$(ms "$t0" "$t1")" >>"$csv"
  echo "template,$i,$(ms "$t1" "$t2")" >>"$csv"
  echo "runc,$i,$(ms "$t2" "$t3")" >>"$csv"
done
phase() {  # phase PREFIX NAME: median of the shim's phase NAME over runs PREFIX<i>
  # (pct skips a header line)
  grep -E "timing $1[0-9]+:" "$D/containerd.log" | grep -oE "$2 [0-9.]+ ms" | awk 'BEGIN {print "how,run,ms"} {print "x,"NR","$(NF-1)}' >"$D/ph.csv"
  [ -s "$D/ph.csv" ] && pct "$D/ph.csv" x 0.5 || echo 0
}

# The VM alone, from the template the shim made: exec to the agent's answer.
tdir=$(ls -d "$D"/run/templates/*/ | head -1)
rcsv=$out/snapshot_restore.csv
echo "how,run,ms" >"$rcsv"
mkdir -p "$D/share"
vm_once() {  # vm_once boot|restore I
  rm -f "$D/vfs.sock" "$D/v.sock"
  /usr/lib/qemu/virtiofsd --socket-path="$D/vfs.sock" -o source="$D/share" -o cache=none -o sandbox=chroot >/dev/null 2>&1 &
  local fsd=$! i
  for i in $(seq 200); do [ -S "$D/vfs.sock" ] && break; sleep 0.05; done
  local args=(--kernel "$kernel" --initrd "$initrd" --mem 256 --vcpus 1)
  [ "$1" = restore ] && args=(--restore "$tdir/state,$tdir/mem")
  local t0=$EPOCHREALTIME
  HUSK_EXEC_T0_NS=$(awk '{printf "%d", $1 * 1000000000}' /proc/uptime) \
    "$vmm" "${args[@]}" --vsock "3,$D/v.sock" --fs "husk,$D/vfs.sock" --console none 2>"$D/vmm.log" &
  local pid=$!
  husk-agentctl --address "hvsock:$D/v.sock:1024" --timeout-ms 120000 version >/dev/null
  echo "$1,$2,$(ms "$t0" "$EPOCHREALTIME")" >>"$rcsv"
  kill $pid 2>/dev/null || true  # SIGTERM: husk-vmm prints its timing as it ends
  wait $pid 2>/dev/null || true
  kill -9 $fsd 2>/dev/null || true
  wait $fsd 2>/dev/null || true
  # exec to the first KVM_RUN, from husk-vmm's own report
  sed -n 's/.*first KVM_RUN at \([0-9]*\) us after exec.*/'"$1"'-first-run,'"$2"',\1/p' "$D/vmm.log" |
    awk -F, '{printf "%s,%s,%.3f\n", $1, $2, $3 / 1000}' >>"$rcsv"
}
for i in $(seq "$n"); do vm_once boot "$i"; vm_once restore "$i"; done
t0=$EPOCHREALTIME
husk-agentctl --address "hvsock:$D/none.sock:1024" --timeout-ms 100 version >/dev/null 2>&1 || true
ctl_ms=$(ms "$t0" "$EPOCHREALTIME")

# Memory: SANDBOXES idle sandboxes per mode, all running at once.
mcsv=$out/snapshot_memory.csv
echo "mode,sandboxes,pss_kib,rss_kib,host_used_kib" >"$mcsv"
# What the machine lost, whoever holds it, beside PSS: page cache and kernel memory (page
# tables, KVM) are in no process's PSS.
used_kib() { awk '/^MemTotal:/ {t = $2} /^MemAvailable:/ {a = $2} END {print t - a}' /proc/meminfo; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/$3" 2>/dev/null || echo 0; }
measure() {  # measure MODE ARGS...: start SANDBOXES idle tasks, sum their processes' memory
  local mode=$1 i p pss=0 rss=0 before
  shift
  sync; echo 3 >/proc/sys/vm/drop_caches
  before=$(used_kib)
  for i in $(seq "$sandboxes"); do ctr run -d "$@" $img "m-$mode-$i" sleep 600 >/dev/null; done
  sleep 5
  for p in $(pids_of "containerd-shim-husk-v2.*-address $D") $(pids_of "husk-jailer .*$D/run/") \
    $(for j in $(pids_of "husk-jailer .*$D/run/"); do cat "/proc/$j/task/$j/children" 2>/dev/null; done) \
    $(pids_of "virtiofsd.*$D/run/"); do
    pss=$((pss + $(kib "$p" Pss smaps_rollup))); rss=$((rss + $(kib "$p" VmRSS status)))
  done
  sync; echo 3 >/proc/sys/vm/drop_caches
  echo "$mode,$sandboxes,$pss,$rss,$(($(used_kib) - before))" >>"$mcsv"
  for i in $(seq "$sandboxes"); do ctr task kill -s KILL "m-$mode-$i" >/dev/null 2>&1 || true; done
  for i in $(seq "$sandboxes"); do
    wait_until 60 "m-$mode-$i to stop" eval "[ \"\$(ctr task ls | awk '\$1==\"m-$mode-$i\"{print \$3}')\" != RUNNING ]" || true
    ctr task rm "m-$mode-$i" >/dev/null 2>&1 || true
    ctr c rm "m-$mode-$i" >/dev/null 2>&1 || true
  done
  for i in $(seq 100); do [ -z "$(pids_of "husk-jailer .*$D/run/")" ] && break; sleep 0.2; done
}
measure cold "${cold[@]}"
measure template "${tmpl[@]}"

per() { awk -F, -v m="$1" -v c="$2" '$1 == m {printf "%.1f", $c / $2 / 1024}' "$mcsv"; }
{
  echo "ctr run --rm <busybox> id true, $n runs each, interleaved, one containerd (emulated times: compare ratios):"
  for m in cold template runc; do
    printf "  %-22s p50 %8.1f ms   p90 %8.1f ms\n" "$m" "$(pct "$csv" $m 0.5)" "$(pct "$csv" $m 0.9)"
  done
  printf "  template/cold: p50 %.2f   template/runc: p50 %.2f   cold/runc: p50 %.2f\n" \
    "$(awk -v a="$(pct "$csv" template 0.5)" -v b="$(pct "$csv" cold 0.5)" 'BEGIN{print a/b}')" \
    "$(awk -v a="$(pct "$csv" template 0.5)" -v b="$(pct "$csv" runc 0.5)" 'BEGIN{print a/b}')" \
    "$(awk -v a="$(pct "$csv" cold 0.5)" -v b="$(pct "$csv" runc 0.5)" 'BEGIN{print a/b}')"
  # restore+agent ends with the guest's Restored call (fresh CRNG seed and clock) answered
  boot_ms=$(phase c boot\\+agent) restore_ms=$(phase t restore\\+agent)
  printf "  the shim's phases (medians): cold boot+agent %.1f ms; template restore+agent %.1f ms (%.3f of cold)\n" \
    "$boot_ms" "$restore_ms" "$(awk -v a="$restore_ms" -v b="$boot_ms" 'BEGIN{print a/b}')"
  printf "  making the template (first sandbox, once): %.1f ms\n" "$template_ms"
  echo "husk-vmm exec to the agent's first answer, $n each:"
  printf "  boot     p50 %8.1f ms   p90 %8.1f ms\n" "$(pct "$rcsv" boot 0.5)" "$(pct "$rcsv" boot 0.9)"
  printf "  restore  p50 %8.1f ms   p90 %8.1f ms   (restore/boot %.3f; guest RAM mapped MAP_PRIVATE from the template)\n" \
    "$(pct "$rcsv" restore 0.5)" "$(pct "$rcsv" restore 0.9)" \
    "$(awk -v a="$(pct "$rcsv" restore 0.5)" -v b="$(pct "$rcsv" boot 0.5)" 'BEGIN{print a/b}')"
  printf "    exec to the first KVM_RUN: boot p50 %s ms, restore p50 %s ms; husk-agentctl's own start: %s ms\n" \
    "$(pct "$rcsv" boot-first-run 0.5)" "$(pct "$rcsv" restore-first-run 0.5)" "$ctl_ms"
  echo "host memory per idle sandbox, $sandboxes running at once (shim + husk-vmm + jailers + virtiofsd):"
  printf "  cold      PSS %6.1f MiB   RSS %6.1f MiB   host memory used %6.1f MiB\n" "$(per cold 3)" "$(per cold 4)" "$(per cold 5)"
  printf "  template  PSS %6.1f MiB   RSS %6.1f MiB   host memory used %6.1f MiB\n" "$(per template 3)" "$(per template 4)" "$(per template 5)"
  echo "  (host memory used: MemTotal - MemAvailable after the sandboxes started, less before, per"
  echo "   sandbox: it includes kernel memory and page cache, which no process's PSS shows)"
  echo "CSV:"
  cat "$csv" "$rcsv" "$mcsv" | sed 's/^/  /'
} | tee "$out/snapshot_start.txt"
