#!/usr/bin/env bash
# containerd_test.sh in VM mode where microVMs boot: directly on hardware KVM, else inside the
# test host with containerd, ctr, runc and its shim, our shim, the VMM, kernel and agent image.
# usage: run_vm.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run_vm.sh BUILD_DIR}
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<S
export HUSK_SHIM_DIR=\$HUSK_ROOT/shim HUSK_AGENT_INITRD=\$HUSK_ROOT/images/agent-initramfs.cpio
export HUSK_OCI_IMAGE=\$HUSK_ROOT/images/busybox-oci.tar
[ -n "\${HUSK_IN_TESTHOST:-}" ] && export HUSK_RUNC_NO_PIVOT=1 HUSK_SHIM_DIR=/husk/bin
bash \$HUSK_ROOT/containerd_test.sh vm
S
HUSK_BUILD=$build exec "$here/../testhost/run.sh" --timeout 1400 --mem 3072 \
  --add "$here/containerd_test.sh:/husk/containerd_test.sh" \
  --add "$build/shim/containerd-shim-husk-v2:/husk/bin/containerd-shim-husk-v2" \
  --add "$build/images/agent-initramfs.cpio:/husk/images/agent-initramfs.cpio" \
  --add "$build/images/busybox-oci.tar:/husk/images/busybox-oci.tar" \
  --add /usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd \
  --add "$(command -v containerd):/husk/bin/containerd" \
  --add "$(command -v ctr):/husk/bin/ctr" \
  --add "$(command -v containerd-shim-runc-v2):/husk/bin/containerd-shim-runc-v2" \
  --add "$(command -v runc):/husk/bin/runc" \
  --add "$(command -v script):/husk/bin/script" \
  --add /bin/bash:/husk/bin/bash \
  "$script"
