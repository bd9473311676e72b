#!/usr/bin/env bash
# What a guest kernel change costs at boot: N boots each of husk-vmm with this tree's kernel
# (build/images/vmlinux) and with OTHER_VMLINUX (the kernel before the change), alternating, in
# one test host run (or directly on hardware KVM). Two measurements per kernel, both from exec:
#   init:  the test initramfs's HUSK_GUEST_READY line (kernel boot to userspace);
#   agent: husk-agent's HUSK_AGENT_READY line (the sandbox's time to a serving agent).
# usage: bench/kernel_compare.sh OTHER_VMLINUX [N]      (outputs in build/bench/)
# env: HUSK_KC_NEW_APPEND="words": added to this tree's kernel's command line only, to see what a
#      hardening option that has a boot-time switch costs (e.g. init_on_alloc=0).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
. "$src/bench/lib.sh"
other=${1:?usage: kernel_compare.sh OTHER_VMLINUX [N]}
n=${2:-15}
out=${HUSK_BENCH_OUT:-$build/bench}
mkdir -p "$out"
script=$(mktemp)
trap 'rm -f "$script"' EXIT
{
  echo "N=$n"
  printf 'NEW_APPEND=%q\n' "${HUSK_KC_NEW_APPEND:-}"
  cat <<'INNER'
clock=${HUSK_BENCH_CLOCK:-husk-bench-clock}
other=${HUSK_ROOT}/images/vmlinux-other
[ -n "${HUSK_IN_TESTHOST:-}" ] || other=$HUSK_OTHER_KERNEL
i=1
while [ $i -le $N ]; do
  for k in new old; do
    kern=$HUSK_KERNEL append=$NEW_APPEND
    [ $k = old ] && kern=$other append=
    r=$($clock --marker HUSK_GUEST_READY -- "$HUSK_VMM" --kernel "$kern" --initrd "$HUSK_INITRD" --mem 256 --console stdio ${append:+--append "$append"})
    echo "BENCH kernel=$k what=init run=$i $r"
    rm -f /tmp/kc.sock
    r=$($clock --marker HUSK_AGENT_READY --stop-at-marker -- "$HUSK_VMM" --kernel "$kern" --initrd "$HUSK_ROOT/images/agent-initramfs.cpio" \
        --mem 256 --vsock 3,/tmp/kc.sock --console stdio ${append:+--append "$append"})
    echo "BENCH kernel=$k what=agent run=$i $r"
  done
  i=$((i + 1))
done
INNER
} >"$script"
HUSK_OTHER_KERNEL=$other HUSK_BUILD=$build "$src/tests/testhost/run.sh" --timeout 3000 \
  --add "$build/bench/husk-bench-clock:/husk/bin/husk-bench-clock" \
  --add "$build/images/agent-initramfs.cpio:/husk/images/agent-initramfs.cpio" \
  --add "$other:/husk/images/vmlinux-other" "$script" >"$out/kernel_compare.log"
csv=$out/kernel_compare.csv
echo "series,run,ms" >"$csv"
sed -nE 's/^BENCH kernel=([a-z]+) what=([a-z]+) run=([0-9]+) rc=[0-9]+ marker_us=([0-9]+) .*/\1-\2,\3,\4/p' "$out/kernel_compare.log" |
  awk -F, '{printf "%s,%s,%.1f\n", $1, $2, $3 / 1000}' >>"$csv"
[ "$(grep -c . "$csv")" -eq $((4 * n + 1)) ] || { echo "kernel compare: some boots did not reach their marker; see $out/kernel_compare.log" >&2; exit 1; }
{
  echo "guest kernel: this tree's ($(readlink -f "$build/images/vmlinux")${HUSK_KC_NEW_APPEND:+ with $HUSK_KC_NEW_APPEND}) vs $other, $n boots each, exec to marker (ms):"
  for what in init agent; do
    n50=$(pct "$csv" new-$what 0.5) n90=$(pct "$csv" new-$what 0.9) o50=$(pct "$csv" old-$what 0.5) o90=$(pct "$csv" old-$what 0.9)
    printf "  %-6s new p50 %8s p90 %8s   old p50 %8s p90 %8s   new/old p50 %.3f\n" "$what" "$n50" "$n90" "$o50" "$o90" \
      "$(awk -v a="$n50" -v b="$o50" 'BEGIN {print a / b}')"
  done
} | tee "$out/kernel_compare.txt"
