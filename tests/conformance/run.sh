#!/usr/bin/env bash
# Runs the husk-agent vs runc conformance suite where it can pass: on this machine when it has
# cgroup v2 with the memory and pids controllers (and runc), otherwise inside the test host,
# whose kernel has them. usage: run.sh CONFORMANCE_BINARY [gtest args...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${HUSK_BUILD:-$src/build}
bin=${1:?usage: run.sh CONFORMANCE_BINARY}
shift
[ "$(id -u)" = 0 ] || { echo "conformance: needs root (containers)" >&2; exit 1; }
runc=$(command -v runc) || { echo "conformance: runc missing: scripts/setup.sh installs it" >&2; exit 1; }
controllers=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null || true)
if [[ " $controllers " == *" memory "* && " $controllers " == *" pids "* ]] && [ "${HUSK_CONFORMANCE_TESTHOST:-auto}" != force ]; then
  echo "conformance: cgroup v2 with memory and pids here, running directly" >&2
  exec "$bin" "$@"
fi
echo "conformance: no cgroup v2 memory/pids controllers here: running inside the test host" >&2
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<S
export HUSK_AGENT=/husk/bin/husk-agent HUSK_AGENTCTL=/husk/bin/husk-agentctl HUSK_RUNC=/husk/bin/runc
export HUSK_TEST_BUNDLE=/husk/test-bundle HUSK_RUNC_RUN_FLAGS=--no-pivot
/husk/bin/husk_conformance_tests $*
S
HUSK_TESTHOST=force exec "$src/tests/testhost/run.sh" --timeout 1400 --mem 2048 \
  --add "$bin:/husk/bin/husk_conformance_tests" \
  --add "$build/guest-agent/husk-agent:/husk/bin/husk-agent" \
  --add "$build/guest-agent/husk-agentctl:/husk/bin/husk-agentctl" \
  --add "$runc:/husk/bin/runc" \
  --add "$(command -v script):/husk/bin/script" \
  --add "$build/images/test-bundle:/husk/test-bundle" \
  "$script"
