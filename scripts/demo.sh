#!/usr/bin/env bash
# Command 1 of the README: set up, build, then boot a microVM with husk-vmm whose init is
# husk-agent, and run a busybox container in it (root filesystem over virtio-fs, control over
# vsock), printing what happened. Where this machine has no hardware KVM (PVM, or no
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
echo "agent initramfs: $build/images/agent-initramfs.cpio (husk-agent as /init)"
if [ -c /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
  say "hardware KVM found: booting the microVM directly"
else
  say "no hardware KVM here ($( [ -d /sys/module/kvm_pvm ] && echo '/dev/kvm is PVM' || echo 'no vmx/svm')): booting the microVM inside the test host (QEMU TCG + nested SVM); its times are emulated"
fi
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<'INNER'
set -e
echo "+ virtiofsd shares a busybox root filesystem (images/build-test-bundle.sh) as tag 'share'"
mkdir -p /tmp/share && cp -a "$HUSK_ROOT/images/test-bundle/rootfs" /tmp/share/rootfs
/usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs.sock -o source=/tmp/share -o cache=none -o sandbox=chroot >/tmp/vfsd.log 2>&1 &
for i in $(seq 100); do [ -S /tmp/vfs.sock ] && break; sleep 0.1; done
echo "+ husk-vmm --kernel vmlinux --initrd agent-initramfs.cpio --vcpus 2 --mem 256 --vsock 3,/tmp/v.sock --fs share,/tmp/vfs.sock"
"$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_ROOT/images/agent-initramfs.cpio" --vcpus 2 --mem 256 \
  --vsock 3,/tmp/v.sock --fs share,/tmp/vfs.sock \
  --cmdline 'console=ttyS0 reboot=k panic=-1 no_timer_check 8250.nr_uarts=1 quiet' >/tmp/vmm.log 2>&1 &
vmm=$!
ctl() { husk-agentctl --address hvsock:/tmp/v.sock:1024 --timeout-ms 120000 "$@"; }
mkdir -p /tmp/bundle
sed 's|"args": \["sh"\]|"args": ["sh", "-c", "echo hello from a container in a husk microVM; echo kernel: $(uname -r); echo hostname: $(hostname); id; exit 42"]|' \
  "$HUSK_ROOT/images/test-bundle/config.json" >/tmp/bundle/config.json
echo "+ husk-agentctl --address hvsock:/tmp/v.sock:1024 run --id demo --bundle /tmp/bundle --virtiofs share --subpath rootfs"
set +e
ctl run --id demo --bundle /tmp/bundle --virtiofs share --subpath rootfs --timing
echo "container exit status: $? (the container said exit 42)"
echo "+ husk-agentctl details"
ctl details
echo "+ husk-agentctl destroy-sandbox (the guest powers off)"
ctl destroy-sandbox
wait $vmm
echo "husk-vmm exit status: $?"
echo "--- guest console (tail):"
tail -5 /tmp/vmm.log
INNER
HUSK_BUILD=$build "$src/tests/testhost/run.sh" \
  --add /usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd \
  --add "$build/images/agent-initramfs.cpio:/husk/images/agent-initramfs.cpio" \
  --add "$build/images/test-bundle:/husk/images/test-bundle" \
  --add "$build/guest-agent/husk-agentctl:/husk/bin/husk-agentctl" "$script"
