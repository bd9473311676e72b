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
  cri_testhost_env "$build"
  echo "bash \$HUSK_SRC/tests/cri/cri_test.sh"
} >"$script"
# shellcheck disable=SC2046  # one --add pair per line, no spaces in the paths
HUSK_BUILD=$build exec "$here/../testhost/run.sh" --timeout 1200 --mem 3072 \
  --add "$here/cri_test.sh:/husk/src/tests/cri/cri_test.sh" $(cri_testhost_adds "$build") \
  $(ctd_testhost_adds "$build") "$script"
