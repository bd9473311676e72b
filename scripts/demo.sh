#!/usr/bin/env bash
# Command 1 of the README: set up, build, then boot a microVM with husk-vmm whose init is
# husk-agent, and run a busybox container in it (root filesystem over virtio-fs, control over
# vsock), printing what happened; then the same through containerd and containerd-shim-husk-v2
# (`ctr run --runtime io.containerd.husk.v2`). Where this machine has no hardware KVM (PVM, or no
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
. "$src/scripts/lib/kvm.sh"
if [ "$(kvm_kind)" = hardware ]; then
  say "hardware KVM found: booting the microVM directly"
else
  say "no hardware KVM here ($(kvm_describe)): booting the microVM inside the test host (QEMU TCG + nested SVM); its times are emulated"
fi
script=$(mktemp)
trap 'rm -f "$script"' EXIT
. "$src/scripts/lib/containerd.sh"
ctd_testhost_env "$src" >"$script"
cat >>"$script" <<'INNER'
set -e
echo "+ virtiofsd shares a busybox root filesystem (images/build-test-bundle.sh) as tag 'share'"
mkdir -p /tmp/share && cp -a "$HUSK_ROOT/images/test-bundle/rootfs" /tmp/share/rootfs
/usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs.sock -o source=/tmp/share -o cache=none -o sandbox=chroot >/tmp/vfsd.log 2>&1 &
wait_for 10 "the socket of virtiofsd" test -S /tmp/vfs.sock
echo "+ husk-vmm --kernel vmlinux --initrd agent-initramfs.cpio --vcpus 2 --mem 256 --vsock 3,/tmp/v.sock --fs share,/tmp/vfs.sock"
"$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_ROOT/images/agent-initramfs.cpio" --vcpus 2 --mem 256 \
  --vsock 3,/tmp/v.sock --fs share,/tmp/vfs.sock >/tmp/vmm.log 2>&1 &
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
wait_pid 200 $vmm husk-vmm
echo "husk-vmm exit status: $?"
echo "--- guest console (tail):"
tail -5 /tmp/vmm.log

echo
echo "== the same through containerd: ctr run --runtime io.containerd.husk.v2"
. "$HUSK_SRC/scripts/lib/containerd.sh"
CTD_DIR=$(mktemp -d /tmp/demo-ctd-XXXXXX) CTD_SHIM_DIR=$HUSK_SHIM_DIR
trap ctd_cleanup EXIT
cat >"$CTD_DIR/shim.json" <<J
{"mode": "vm", "vmm": "$HUSK_VMM", "jailer": "$HUSK_JAILER", "kernel": "$HUSK_KERNEL", "initramfs": "$HUSK_ROOT/images/agent-initramfs.cpio",
 "vcpus": 1, "memory_mib": 256, "agent_timeout_ms": 120000, "log_level": "debug", "state_dir": "$CTD_DIR/run"}
J
echo "+ containerd (private root and socket), containerd-shim-husk-v2 on its PATH, a shim config naming the kernel and agent initramfs"
ctd_start
echo "+ ctr image import busybox-oci.tar (a busybox image built locally by images/build-oci-image.sh)"
ctr image import "$HUSK_ROOT/images/busybox-oci.tar" | tail -1
echo "+ ctr run --rm --runtime io.containerd.husk.v2 docker.io/husk/busybox:latest demo sh -c '...; exit 7'"
t0=$EPOCHREALTIME
ctr run --rm --snapshotter native --runtime io.containerd.husk.v2 docker.io/husk/busybox:latest demo \
  sh -c 'echo hello from containerd in a husk microVM; echo kernel: $(uname -r); exit 7'
rc=$?
t1=$EPOCHREALTIME
echo "container exit status: $rc (the container said exit 7), $(awk -v a=$t0 -v b=$t1 'BEGIN {printf "%.0f", (b - a) * 1000}') ms (emulated in the test host)"
echo "where the shim's time went:"
grep -oE 'timing demo: .*' "$CTD_DIR/containerd.log" | sed 's/^/  /'
INNER
# shellcheck disable=SC2046  # one --add pair per line, no spaces in the paths
HUSK_BUILD=$build "$src/tests/testhost/run.sh" --mem 2048 \
  --add "$build/images/test-bundle:/husk/images/test-bundle" \
  --add "$build/guest-agent/husk-agentctl:/husk/bin/husk-agentctl" $(ctd_testhost_adds "$build") "$script"
