#!/usr/bin/env bash
# cri_test.sh where microVMs boot: directly on hardware KVM, else inside the test host with
# containerd (CRI plugin on), the CNI plugins, husk-cri, the pause and busybox images.
# usage: run_vm.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/containerd.sh"
build=${1:?usage: run_vm.sh BUILD_DIR}
script=$(mktemp)
trap 'rm -f "$script"' EXIT
{
  ctd_testhost_env "$(cd "$here/../.." && pwd)"
  echo "export HUSK_CRI=\${HUSK_CRI:-$build/tests/cri/husk-cri} HUSK_PAUSE_IMAGE=\$HUSK_ROOT/images/pause-oci.tar"
  echo "[ -z \"\${HUSK_IN_TESTHOST:-}\" ] || export HUSK_CRI=/husk/bin/husk-cri CTD_CNI_BIN=/husk/cni"
  echo "bash \$HUSK_SRC/tests/cri/cri_test.sh"
} >"$script"
cni=()
for p in bridge host-local loopback; do cni+=(--add "/usr/lib/cni/$p:/husk/cni/$p"); done
# shellcheck disable=SC2046  # one --add pair per line, no spaces in the paths
HUSK_BUILD=$build exec "$here/../testhost/run.sh" --timeout 1200 --mem 3072 \
  --add "$here/cri_test.sh:/husk/src/tests/cri/cri_test.sh" --add "$build/tests/cri/husk-cri:/husk/bin/husk-cri" \
  --add "$build/images/pause-oci.tar:/husk/images/pause-oci.tar" "${cni[@]}" \
  $(ctd_testhost_adds "$build") "$script"
