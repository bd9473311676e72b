#!/usr/bin/env bash
# Runs a shell script where a real guest can boot: directly when this machine has hardware KVM
# (vmx/svm and not PVM), otherwise inside the test host: QEMU TCG with emulated SVM running
# Debian's cloud kernel with kvm-amd, our binaries and images in its initramfs.
#
# usage: run.sh [--timeout SEC] [--mem MiB] [--cpus N] [--any-kvm] [--add SRC:DEST]... SCRIPT
# --any-kvm: the script needs KVM but no Linux guest (husk-vmm --bin): this machine's /dev/kvm
# will do, PVM included; only without one does it go to the test host.
# The script sees HUSK_VMM, HUSK_JAILER, HUSK_KERNEL, HUSK_INITRD, HUSK_ROOT (and HUSK_IN_TESTHOST=1 inside),
# our static test tools (images/tools) on its PATH, and prelude.sh's bounded waits.
# Its stdout/stderr are printed and its exit status is returned. If the test host itself fails
# (no output marker), exits 125 with a message: a broken test host must fail loudly.
# HUSK_TESTHOST=force|never|auto (default auto) overrides the choice.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
. "$src/scripts/lib/cpio.sh"
. "$src/scripts/lib/kvm.sh"
build=${HUSK_BUILD:-$src/build}
# One CPU: with two, QEMU 7.2's multi-threaded TCG deadlocked the test host's kernel within a few
# dozen boots under load (both CPUs spinning with interrupts off, one in the qspinlock slow
# path, the other in try_to_wake_up waiting for a task's on_cpu to clear — a state the scheduler
# cannot reach on real CPUs). One CPU leaves nothing for TCG to order between CPUs; guests may
# still have more vCPUs. See README, "The test host".
timeout=300 mem=2048 cpus=1 any_kvm=
adds=()
while [ $# -gt 1 ]; do
  case "$1" in
    --timeout) timeout=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --add) adds+=("$2"); shift 2 ;;
    --any-kvm) any_kvm=1; shift ;;
    *) break ;;
  esac
done
script=${1:?usage: run.sh [options] SCRIPT}

vmm=$build/vmm/husk-vmm jailer=$build/jailer/husk-jailer kernel=$build/images/vmlinux initrd=$build/images/guest-initramfs.cpio
for f in "$vmm" "$jailer" "$kernel" "$initrd"; do
  [ -e "$f" ] || { echo "testhost: missing $f: build first (cmake --build $build)" >&2; exit 125; }
done

kind=$(kvm_kind)
usable_kvm() { [ "$kind" != none ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }
mode=${HUSK_TESTHOST:-auto}
if [ "$mode" = never ] || { [ "$mode" = auto ] && { [ "$kind" = hardware ] || { [ -n "$any_kvm" ] && usable_kvm; }; }; }; then
  [ "$mode" = never ] || echo "testhost: $(kvm_describe) here, running directly" >&2
  export HUSK_VMM=$vmm HUSK_JAILER=$jailer HUSK_KERNEL=$kernel HUSK_INITRD=$initrd HUSK_ROOT=$build
  export PATH=$build/images/tools:$build/guest-agent:$PATH
  full=$(mktemp)
  trap 'rm -f "$full"' EXIT
  cat "$here/prelude.sh" "$script" >"$full"
  timeout "$timeout" bash "$full"
  exit
fi

command -v qemu-system-x86_64 >/dev/null || { echo "testhost: qemu-system-x86_64 missing (scripts/setup.sh)" >&2; exit 125; }
hostdir=$("$here/prepare.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
stage_busybox "$root"
install -m 755 "$here/init" "$root/init"
mkdir -p "$root/lib/modules/husk" "$root/husk/bin" "$root/husk/images" "$root/husk/run"
cp "$hostdir"/modules/*.ko "$root/lib/modules/husk/"
if file_is_static "$vmm"; then cp "$vmm" "$root/husk/bin/"; else copy_with_libs "$vmm" "$root" /husk/bin/husk-vmm; fi
copy_with_libs "$jailer" "$root" /husk/bin/husk-jailer
cp -L "$kernel" "$root/husk/images/vmlinux"
# Our static test tools (husk-vsock-test, ...) are on the test host's PATH too.
for t in "$build"/images/tools/husk-*; do [ -f "$t" ] && [ -x "$t" ] && cp "$t" "$root/husk/bin/"; done
cp "$initrd" "$root/husk/images/guest-initramfs.cpio"
for a in "${adds[@]+"${adds[@]}"}"; do
  s=${a%%:*} d=${a#*:}
  mkdir -p "$root/$(dirname "$d")"
  if [ -x "$s" ] && [ -f "$s" ] && ! file_is_static "$s" && ldd "$s" >/dev/null 2>&1; then
    copy_with_libs "$s" "$root" "$d"
  elif [ -d "$s" ]; then
    cp -a "$s" "$root/$d"  # keeps symlinks (a busybox root has hundreds)
  else
    cp -rL "$s" "$root/$d"
  fi
done
cat "$here/prelude.sh" "$script" >"$root/husk/run/cmd.sh"
make_cpio "$root" "$work/initrd.cpio"

# TCG's TSC runs at the host's rate. Telling the test host kernel that rate skips its TSC
# calibration against the emulated PIT, which fails when the machine is busy ("Unable to
# calibrate against PIT", TSC marked unstable) and then hangs the boot.
khz=$(awk -F: '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
clock="tsc_early_khz=$khz tsc=reliable lpj=$((khz * 1000 / 250))"
# A periodic tick (nohz=off highres=off: the LAPIC timer in periodic mode). QEMU 7.2's TCG can
# lose the wake-up for a pending interrupt while the test host runs nested guests: it was seen
# halted for good with the timer's vector waiting in its LAPIC's IRR (`info lapic`), the one-shot
# timer spent and nothing left to re-arm it. A periodic timer raises the interrupt again at the
# next tick, so a lost wake-up costs 4 ms instead of the run.
tick="nohz=off highres=off"
# A CPU stuck in the kernel ends the test host at once (instead of at the timeout), and the panic
# prints every CPU's backtrace whatever the log level: the failure keeps its evidence.
lockup="softlockup_panic=1 panic_print=0x40"
# -cpu max exposes SVM to the test host kernel; microvm keeps QEMU's own boot short; the
# test host's serial is its only channel back to us.
set +e
qemu-system-x86_64 -accel "${HUSK_TESTHOST_ACCEL:-tcg,thread=multi}" -M microvm,rtc=on -cpu max \
  -smp "$cpus" -m "$mem" -nographic -no-reboot -nodefaults -serial stdio -monitor "unix:$work/monitor.sock,server,nowait" \
  -kernel "$hostdir/vmlinuz" -initrd "$work/initrd.cpio" \
  -append "console=ttyS0 panic=-1 reboot=t $clock $tick $lockup ${HUSK_TESTHOST_APPEND:-quiet loglevel=3}" </dev/null >"$work/out.log" 2>&1 &
qpid=$!
deadline=$((SECONDS + timeout))
while kill -0 "$qpid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
if kill -0 "$qpid" 2>/dev/null; then
  # Timed out: before it goes, the test host's CPUs as QEMU sees them (where each one is stuck).
  echo "=== test host timed out after ${timeout}s; its CPUs:" >>"$work/out.log"
  python3 "$here/monitor_dump.py" "$work/monitor.sock" >>"$work/out.log" 2>&1 || true
  kill "$qpid" 2>/dev/null
  sleep 1
  kill -9 "$qpid" 2>/dev/null
fi
wait "$qpid"
qrc=$?
[ "$SECONDS" -lt "$deadline" ] || qrc=124
set -e
# Strip the carriage returns the serial adds; print only what the command produced.
tr -d '\r' <"$work/out.log" >"$work/clean.log"
if ! grep -q '^TESTHOST_EXIT=' "$work/clean.log"; then
  # The whole console is kept: a hang's kernel backtraces come long before its tail.
  logdir=${HUSK_TESTHOST_LOGS:-$build/testhost-logs}
  mkdir -p "$logdir"
  kept=$logdir/failed-$(date +%Y%m%d-%H%M%S)-$$.log
  cp "$work/clean.log" "$kept"
  echo "testhost: FAILED: the test host did not report an exit status (qemu exit $qrc$([ $qrc = 124 ] && echo ', timed out')). Whole console: $kept. Its tail:" >&2
  tail -40 "$work/clean.log" >&2
  exit 125
fi
sed -n '/^TESTHOST_BEGIN$/,/^TESTHOST_EXIT=/p' "$work/clean.log" | sed '1d;$d'
rc=$(grep -o '^TESTHOST_EXIT=[0-9]*' "$work/clean.log" | tail -1 | cut -d= -f2)
exit "$rc"
