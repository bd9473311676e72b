#!/usr/bin/env bash
# Command 1 of the README: set up, build, then boot a microVM with husk-vmm and show what the
# guest printed and how long it took to boot. Where this machine has no hardware KVM (PVM, or no
# /dev/kvm), the microVM boots inside the test host (QEMU TCG with nested SVM).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\n== %s\n' "$*"; }
say "installing packages (scripts/setup.sh)"
"$src/scripts/setup.sh"
say "building husk-vmm, the guest kernel (cached after the first build) and the guest initramfs"
"$src/scripts/build.sh" | tail -n 3
build=${HUSK_BUILD:-$src/build}
echo "husk-vmm:        $build/vmm/husk-vmm"
echo "guest kernel:    $(readlink -f "$build/images/vmlinux")"
echo "guest initramfs: $build/images/guest-initramfs.cpio"
if [ -c /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
  say "hardware KVM found: booting the microVM directly"
else
  say "no hardware KVM here ($( [ -d /sys/module/kvm_pvm ] && echo '/dev/kvm is PVM' || echo 'no vmx/svm')): booting the microVM inside the test host (QEMU TCG + nested SVM); its times are emulated"
fi
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<'INNER'
echo "+ husk-vmm --kernel vmlinux --initrd guest-initramfs.cpio --vcpus 2 --mem 256"
"$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --vcpus 2 --mem 256
echo "husk-vmm exit status: $?"
INNER
HUSK_BUILD=$build "$src/tests/testhost/run.sh" "$script"
