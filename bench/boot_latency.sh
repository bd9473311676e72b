#!/usr/bin/env bash
# Boot latency: N boots of husk-vmm and N of QEMU microvm (the peer), same vmlinux, initramfs
# and command line, inside one test host run (or directly on hardware KVM). Both are timed by
# husk-bench-clock from exec to the guest's HUSK_GUEST_READY line; husk's own boot-timer figure
# (exec to the guest's MMIO write) is recorded too. Prints p50/p90 and ratios, writes a CSV and
# a PNG plot.   usage: bench/boot_latency.sh [N]   (outputs in build/bench/)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
. "$src/bench/lib.sh"
n=${1:-20}
out=${HUSK_BENCH_OUT:-$build/bench}
mkdir -p "$out"
for f in "$build/bench/husk-bench-clock" "$build/vmm/husk-vmm" "$build/images/vmlinux"; do
  [ -e "$f" ] || { echo "missing $f: run scripts/build.sh first" >&2; exit 1; }
done

script=$(mktemp)
trap 'rm -f "$script"' EXIT
{ echo "N=$n"; bench_peer_env "$build/vmm/husk-vmm"; } >"$script"
cat >>"$script" <<'INNER'
clock=${HUSK_BENCH_CLOCK:-husk-bench-clock}
i=1
while [ $i -le $N ]; do
  # Alternate the two so drift in the emulated machine hits both alike.
  r=$($clock --log /tmp/h.log -- "$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 256)
  bt=$(sed -n 's/.*boot-timer: guest booted in \([0-9]*\) us (first KVM_RUN at \([0-9]*\) us).*/boot_timer_us=\1 first_run_us=\2/p' /tmp/h.log)
  echo "BENCH vmm=husk run=$i $r $bt"
  # microvm has no i8042: reset by triple fault so QEMU (-no-reboot) exits at once.
  r=$($clock --log /tmp/q.log -- "$QEMU" $QEMU_MICROVM -serial stdio \
      -kernel "$HUSK_KERNEL" -initrd "$HUSK_INITRD" -append "$GUEST_CMDLINE")
  echo "BENCH vmm=qemu-microvm run=$i $r"
  i=$((i + 1))
done
INNER

echo "boot latency: $n boots each of husk-vmm and qemu-system-x86_64 -M microvm"
HUSK_BUILD=$build "$src/tests/testhost/run.sh" --timeout 3000 \
  --add "$build/bench/husk-bench-clock:/husk/bin/husk-bench-clock" \
  "${qemu_testhost_args[@]}" \
  "$script" | tee "$out/boot_latency.log" | grep '^BENCH' >"$out/boot_latency.raw"

echo "vmm,run,rc,marker_us,exit_us,boot_timer_us" >"$out/boot_latency.csv"
sed -E 's/^BENCH vmm=([^ ]+) run=([0-9]+) rc=([0-9]+) marker_us=(-?[0-9]+) exit_us=([0-9]+) maxrss_kib=[0-9]+ ?(boot_timer_us=([0-9]+))?.*/\1,\2,\3,\4,\5,\7/' \
  "$out/boot_latency.raw" >>"$out/boot_latency.csv"
if awk -F, 'NR>1 && ($3 != 0 || $4 < 0) {bad=1} END {exit !bad}' "$out/boot_latency.csv"; then
  echo "boot latency: some boots failed (rc != 0 or no marker); see $out/boot_latency.log" >&2
  exit 1
fi

ms() { pct "$out/boot_latency.csv" "$1" "$3" "$2" | awk '{printf "%.1f", $1 / 1000}'; }  # ms VMM COLUMN P
h50=$(ms husk 4 0.5) h90=$(ms husk 4 0.9) q50=$(ms qemu-microvm 4 0.5) q90=$(ms qemu-microvm 4 0.9)
t50=$(ms husk 6 0.5) t90=$(ms husk 6 0.9)
{
  echo "time from exec to the guest's HUSK_GUEST_READY line (ms, emulated where the test host was used):"
  printf "  %-14s p50 %8s   p90 %8s\n" husk-vmm "$h50" "$h90" qemu-microvm "$q50" "$q90"
  printf "  ratio husk/qemu: p50 %s   p90 %s   (below 1: husk is faster)\n" \
    "$(awk -v a="$h50" -v b="$q50" 'BEGIN{printf "%.2f", a/b}')" "$(awk -v a="$h90" -v b="$q90" 'BEGIN{printf "%.2f", a/b}')"
  echo "husk-vmm boot-timer (exec to the guest's ready line, seen by husk-vmm itself): p50 $t50 ms  p90 $t90 ms"
} | tee "$out/boot_latency.txt"

if command -v gnuplot >/dev/null; then
  awk -F, 'NR>1 && $1=="husk" {print $2, $4/1000}' "$out/boot_latency.csv" >"$out/husk.dat"
  awk -F, 'NR>1 && $1=="qemu-microvm" {print $2, $4/1000}' "$out/boot_latency.csv" >"$out/qemu.dat"
  gnuplot <<PLOT
set terminal png size 900,500
set output "$out/boot_latency.png"
set title "Boot latency: exec to guest init marker ($n boots each, one test host run)"
set xlabel "run"
set ylabel "ms"
set key top left
set grid
plot "$out/husk.dat" using 1:2 with linespoints title "husk-vmm (p50 $h50 ms)", \
     "$out/qemu.dat" using 1:2 with linespoints title "QEMU microvm (p50 $q50 ms)"
PLOT
  echo "plot: $out/boot_latency.png  csv: $out/boot_latency.csv"
fi
