#!/usr/bin/env bash
# containerd_test.sh in VM mode where microVMs boot: directly on hardware KVM, else inside the
# test host with containerd, ctr, runc and its shim, our shim, the VMM, kernel and agent image.
# usage: run_vm.sh BUILD_DIR [SECTION...]   (sections as in containerd_test.sh; default all)
# env: HUSK_LEAK_RUNS and HUSK_SHIM_START (boot|template) pass through.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/containerd.sh"
build=${1:?usage: run_vm.sh BUILD_DIR [SECTION...]}
shift
script=$(mktemp)
trap 'rm -f "$script"' EXIT
{
  ctd_testhost_env "$(cd "$here/../.." && pwd)"
  echo "export HUSK_LEAK_RUNS=\"${HUSK_LEAK_RUNS:-20 5}\""
  echo "export HUSK_SHIM_START=${HUSK_SHIM_START:-boot}"
  echo "bash \$HUSK_SRC/tests/shim/containerd_test.sh vm $*"
} >"$script"
# shellcheck disable=SC2046  # one --add pair per line, no spaces in the paths
# A section that hangs fails at this deadline (with the test host's console), not the whole run.
timeout=900
[[ " $* " != *" leaks "* && -n "$*" ]] || timeout=1400
HUSK_BUILD=$build exec "$here/../testhost/run.sh" --timeout "$timeout" --mem 3072 \
  --add "$here/containerd_test.sh:/husk/src/tests/shim/containerd_test.sh" $(ctd_testhost_adds "$build") "$script"
