#!/usr/bin/env bash
# VMM overhead on this machine directly (PVM is fine: no Linux guest is booted). The guest is
# 7 bytes that work in real and long mode: `mov al,0xfe; out 0xf4,al; out 0x64,al; hlt` — QEMU
# leaves through isa-debug-exit at port 0xf4, husk-vmm through the i8042 reset at 0x64.
# Measured per run (husk-bench-clock): exec -> exit, peak RSS; for husk also exec -> first
# KVM_RUN. Both VMMs get 128 MiB of guest memory, of which the guest touches a few pages.
# usage: bench/vmm_overhead.sh [N]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
n=${1:-50}
out=${HUSK_BENCH_OUT:-$build/bench}
mkdir -p "$out"
clock=$build/bench/husk-bench-clock
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '\xb0\xfe\xe6\xf4\xe6\x64\xf4' >"$work/tiny.bin"
# QEMU starts the same code as its firmware, at the reset vector 16 bytes below 4 GiB.
python3 - "$work/tiny-bios.bin" <<'PY'
import sys
b = bytearray(b'\xf4' * 65536)
b[0xfff0:0xfff7] = b'\xb0\xfe\xe6\xf4\xe6\x64\xf4'
open(sys.argv[1], 'wb').write(b)
PY
echo "vmm,run,rc,exit_us,maxrss_kib,first_run_us,memslot_us" >"$out/vmm_overhead.csv"
for i in $(seq "$n"); do
  r=$("$clock" --marker '' --log "$work/h.log" -- "$build/vmm/husk-vmm" --bin "$work/tiny.bin" --mem 128 --console none)
  fr=$(sed -n 's/.*first KVM_RUN at \([0-9]*\) us after exec (\([0-9]*\) us.*/\1,\2/p' "$work/h.log")
  echo "$r" | sed -E "s/rc=([0-9]+) marker_us=-?[0-9]+ exit_us=([0-9]+) maxrss_kib=([0-9]+)/husk,$i,\1,\2,\3,$fr/" >>"$out/vmm_overhead.csv"
  # -cpu qemu64: PVM cannot take -cpu host's IA32_ARCH_CAPABILITIES MSR.
  r=$("$clock" --marker '' --log "$work/q.log" -- qemu-system-x86_64 -M microvm,acpi=off -accel kvm \
      -cpu qemu64 -m 128 -nodefaults -no-user-config -nographic -no-reboot -bios "$work/tiny-bios.bin" \
      -device isa-debug-exit,iobase=0xf4)
  echo "$r" | sed -E "s/rc=([0-9]+) marker_us=-?[0-9]+ exit_us=([0-9]+) maxrss_kib=([0-9]+)/qemu-microvm,$i,\1,\2,\3,,/" >>"$out/vmm_overhead.csv"
done
# husk exits 0 on the reset; QEMU's debug-exit status for 0xfe is (0xfe<<1|1)&0xff = 253.
if awk -F, 'NR>1 && (($1=="husk" && $3!=0) || ($1!="husk" && $3!=253)) {bad=1} END {exit !bad}' "$out/vmm_overhead.csv"; then
  echo "vmm overhead: a run did not exit as expected:" >&2; cat "$work/h.log" "$work/q.log" >&2; exit 1
fi
p50() { awk -F, -v v="$1" -v c="$2" 'NR>1 && $1==v && $c!="" {print $c}' "$out/vmm_overhead.csv" | sort -n |
  awk '{a[NR]=$1} END {printf "%.2f", a[int((NR-1)/2)+1]}'; }
{
  echo "VMM overhead, $n runs each, tiny guest, 128 MiB, this machine directly ($( [ -d /sys/module/kvm_pvm ] && echo PVM || echo KVM)):"
  printf "  husk-vmm      exec->first KVM_RUN p50 %6.2f ms   exec->exit p50 %6.2f ms   peak RSS p50 %6.2f MiB\n" \
    "$(awk -v x="$(p50 husk 6)" 'BEGIN{print x/1000}')" "$(awk -v x="$(p50 husk 4)" 'BEGIN{print x/1000}')" "$(awk -v x="$(p50 husk 5)" 'BEGIN{print x/1024}')"
  printf "                (of which inside the kernel's KVM_SET_USER_MEMORY_REGION: p50 %.2f ms)\n" \
    "$(awk -v x="$(p50 husk 7)" 'BEGIN{print x/1000}')"
  printf "  qemu-microvm                                   exec->exit p50 %6.2f ms   peak RSS p50 %6.2f MiB\n" \
    "$(awk -v x="$(p50 qemu-microvm 4)" 'BEGIN{print x/1000}')" "$(awk -v x="$(p50 qemu-microvm 5)" 'BEGIN{print x/1024}')"
  printf "  ratio husk/qemu: exec->exit %.2f   peak RSS %.2f\n" \
    "$(awk -v a="$(p50 husk 4)" -v b="$(p50 qemu-microvm 4)" 'BEGIN{print a/b}')" \
    "$(awk -v a="$(p50 husk 5)" -v b="$(p50 qemu-microvm 5)" 'BEGIN{print a/b}')"
} | tee "$out/vmm_overhead.txt"
