#!/usr/bin/env bash
# containerd_test.sh in VM mode where microVMs boot: directly on hardware KVM, else inside the
# test host with containerd, ctr, runc and its shim, our shim, the VMM, kernel and agent image.
# usage: run_vm.sh BUILD_DIR [SECTION...]   (sections as in containerd_test.sh; default all)
# env: HUSK_LEAK_RUNS passes through.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/containerd.sh"
build=${1:?usage: run_vm.sh BUILD_DIR [SECTION...]}
shift
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<S
export HUSK_SHIM_DIR=\$HUSK_ROOT/shim HUSK_AGENT_INITRD=\$HUSK_ROOT/images/agent-initramfs.cpio
export HUSK_OCI_IMAGE=\$HUSK_ROOT/images/busybox-oci.tar HUSK_LEAK_RUNS="${HUSK_LEAK_RUNS:-20 5}"
t=$here/containerd_test.sh
if [ -n "\${HUSK_IN_TESTHOST:-}" ]; then
  export HUSK_RUNC_NO_PIVOT=1 HUSK_SHIM_DIR=/husk/bin HUSK_LIB=/husk/lib
  t=/husk/containerd_test.sh
fi
bash \$t vm $*
S
# shellcheck disable=SC2046  # one --add pair per line, no spaces in the paths
HUSK_BUILD=$build exec "$here/../testhost/run.sh" --timeout 1400 --mem 3072 \
  --add "$here/containerd_test.sh:/husk/containerd_test.sh" $(ctd_testhost_adds "$build") "$script"
