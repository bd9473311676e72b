#!/usr/bin/env bash
# VMM overhead: exec -> first KVM_RUN, exec -> exit and peak RSS of husk-vmm beside QEMU microvm
# (the peer) on a guest of 7 bytes that works in real and long mode:
# `mov al,0xfe; out 0xf4,al; out 0x64,al; hlt` — QEMU leaves through isa-debug-exit at port
# 0xf4, husk-vmm through the i8042 reset at 0x64. Both get 128 MiB, of which the guest touches a
# few pages. No Linux guest is booted, so any /dev/kvm will do (PVM included): the runs happen
# on this machine where it has one, else inside the test host (nested KVM under QEMU TCG:
# emulated times), with QEMU measured in the same place either way. The output says which.
# usage: bench/vmm_overhead.sh [N]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
. "$src/bench/lib.sh"
n=${1:-50}
out=${HUSK_BENCH_OUT:-$build/bench}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/files"
printf '\xb0\xfe\xe6\xf4\xe6\x64\xf4' >"$work/files/tiny.bin"
# QEMU starts the same code as its firmware, at the reset vector 16 bytes below 4 GiB.
python3 - "$work/files/tiny-bios.bin" <<'PY'
import sys
b = bytearray(b'\xf4' * 65536)
b[0xfff0:0xfff7] = b'\xb0\xfe\xe6\xf4\xe6\x64\xf4'
open(sys.argv[1], 'wb').write(b)
PY

{
  echo "N=$n FILES=$work/files CLOCK=$build/bench/husk-bench-clock WHERE='this machine directly ($(. "$src/scripts/lib/kvm.sh"; kvm_describe))'"
  bench_peer_env "$build/vmm/husk-vmm"
  cat <<'INNER'
if [ -n "${HUSK_IN_TESTHOST:-}" ]; then
  FILES=/husk/bench CLOCK=/husk/bin/husk-bench-clock
  WHERE='inside the test host (nested KVM under QEMU TCG: emulated times, compare the ratios)'
fi
echo "WHERE=$WHERE"
i=1
while [ "$i" -le "$N" ]; do
  r=$("$CLOCK" --marker '' --log /tmp/h.log -- "$HUSK_VMM" --bin "$FILES/tiny.bin" --mem 128 --console none)
  fr=$(sed -n 's/.*first KVM_RUN at \([0-9]*\) us after exec (\([0-9]*\) us.*/first_run_us=\1 memslot_us=\2/p' /tmp/h.log)
  echo "BENCH vmm=husk run=$i $r $fr"
  # The same without seccomp filters, and jailed (husk-jailer: cgroup-less here, namespaces,
  # private root, uid drop) with them: what each costs. Exec is the jailer's for the last.
  r=$("$CLOCK" --marker '' --log /tmp/h.log -- "$HUSK_VMM" --bin "$FILES/tiny.bin" --mem 128 --console none --no-seccomp)
  fr=$(sed -n 's/.*first KVM_RUN at \([0-9]*\) us after exec (\([0-9]*\) us.*/first_run_us=\1 memslot_us=\2/p' /tmp/h.log)
  echo "BENCH vmm=husk-noseccomp run=$i $r $fr"
  mkdir -p /tmp/bench-jail
  r=$("$CLOCK" --marker '' --log /tmp/h.log -- "$HUSK_JAILER" --uid 30500 --gid 30500 --root /tmp/bench-jail \
      --bind "$FILES/tiny.bin:/tiny.bin" --dev /dev/kvm --pass-env HUSK_EXEC_T0_NS -- \
      "$HUSK_VMM" --bin /tiny.bin --mem 128 --console none)
  fr=$(sed -n 's/.*first KVM_RUN at \([0-9]*\) us after exec (\([0-9]*\) us.*/first_run_us=\1 memslot_us=\2/p' /tmp/h.log)
  echo "BENCH vmm=husk-jailed run=$i $r $fr"
  # -cpu qemu64: PVM cannot take -cpu host's IA32_ARCH_CAPABILITIES MSR.
  r=$("$CLOCK" --marker '' --log /tmp/q.log -- "$QEMU" -L "$QEMU_DATA" -M microvm,acpi=off -accel kvm \
      -cpu qemu64 -m 128 -nodefaults -no-user-config -nographic -no-reboot -bios "$FILES/tiny-bios.bin" \
      -device isa-debug-exit,iobase=0xf4)
  echo "BENCH vmm=qemu-microvm run=$i $r"
  i=$((i + 1))
done
INNER
} >"$work/run.sh"

HUSK_BUILD=$build "$src/tests/testhost/run.sh" --any-kvm --timeout 3000 \
  --add "$build/bench/husk-bench-clock:/husk/bin/husk-bench-clock" --add "$work/files:/husk/bench" \
  "${qemu_testhost_args[@]}" "$work/run.sh" >"$work/log" 2>&1 || {
  echo "vmm overhead: the runs failed:" >&2; cat "$work/log" >&2; exit 1; }
where=$(sed -n 's/^WHERE=//p' "$work/log")
echo "vmm,run,rc,exit_us,maxrss_kib,first_run_us,memslot_us" >"$out/vmm_overhead.csv"
sed -nE 's/^BENCH vmm=([^ ]+) run=([0-9]+) rc=([0-9]+) marker_us=-?[0-9]+ exit_us=([0-9]+) maxrss_kib=([0-9]+) ?(first_run_us=([0-9]+) memslot_us=([0-9]+))?.*/\1,\2,\3,\4,\5,\7,\8/p' \
  "$work/log" >>"$out/vmm_overhead.csv"
# husk exits 0 on the reset; QEMU's debug-exit status for 0xfe is (0xfe<<1|1)&0xff = 253.
if [ "$(awk 'END {print NR}' "$out/vmm_overhead.csv")" -ne $((4 * n + 1)) ] ||
  awk -F, 'NR>1 && (($1 ~ /^husk/ && $3!=0) || ($1 !~ /^husk/ && $3!=253)) {bad=1} END {exit !bad}' "$out/vmm_overhead.csv"; then
  echo "vmm overhead: a run did not exit as expected:" >&2; cat "$work/log" >&2; exit 1
fi
# pct reads column 3: reshape each column into NAME,x,VALUE first.
col() { awk -F, -v c="$2" -v v="$1" 'NR==1 {print "vmm,x,v"} NR>1 && $1==v && $c!="" {print $1 ",x," $c}' "$out/vmm_overhead.csv" >"$work/col.csv"
        pct "$work/col.csv" "$1" 0.5 | awk -v d="${3:-1000}" '{printf "%.2f", $1 / d}'; }
{
  echo "VMM overhead, $n runs each, tiny guest, 128 MiB, $where:"
  printf "  husk-vmm      exec->first KVM_RUN p50 %6.2f ms   exec->exit p50 %6.2f ms   peak RSS p50 %6.2f MiB\n" \
    "$(col husk 6)" "$(col husk 4)" "$(col husk 5 1024)"
  printf "                (of which inside the kernel's KVM_SET_USER_MEMORY_REGION: p50 %.2f ms)\n" "$(col husk 7)"
  printf "  husk-vmm without seccomp       first KVM_RUN p50 %6.2f ms   exec->exit p50 %6.2f ms\n" "$(col husk-noseccomp 6)" "$(col husk-noseccomp 4)"
  printf "  husk-jailer + husk-vmm (jail and seccomp) first KVM_RUN p50 %6.2f ms   exec->exit p50 %6.2f ms\n" "$(col husk-jailed 6)" "$(col husk-jailed 4)"
  printf "  cost: seccomp %+.2f ms to first KVM_RUN; jail + seccomp %+.2f ms to first KVM_RUN, %+.2f ms exec->exit\n" \
    "$(awk -v a="$(col husk 6)" -v b="$(col husk-noseccomp 6)" 'BEGIN{print a-b}')" \
    "$(awk -v a="$(col husk-jailed 6)" -v b="$(col husk-noseccomp 6)" 'BEGIN{print a-b}')" \
    "$(awk -v a="$(col husk-jailed 4)" -v b="$(col husk-noseccomp 4)" 'BEGIN{print a-b}')"
  printf "  qemu-microvm                                   exec->exit p50 %6.2f ms   peak RSS p50 %6.2f MiB\n" \
    "$(col qemu-microvm 4)" "$(col qemu-microvm 5 1024)"
  printf "  ratio husk/qemu: exec->exit %.2f   peak RSS %.2f\n" \
    "$(awk -v a="$(col husk 4)" -v b="$(col qemu-microvm 4)" 'BEGIN{print a/b}')" \
    "$(awk -v a="$(col husk 5)" -v b="$(col qemu-microvm 5)" 'BEGIN{print a/b}')"
} | tee "$out/vmm_overhead.txt"
