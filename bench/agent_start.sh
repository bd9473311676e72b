#!/usr/bin/env bash
# Container start cost without a VM: create + start + wait (+ remove) of `true` in the busybox
# test bundle, N times, through husk-agent in host mode (husk-agentctl run: a new client process
# each time, like runc) beside `runc run` of the same bundle, interleaved so both see the same
# machine. Prints p50/p90 and the ratio; CSV in build/bench/agent_start.csv. Needs root.
# usage: bench/agent_start.sh [N]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
build=${HUSK_BUILD:-$src/build}
n=${1:-100}
out=${HUSK_BENCH_OUT:-$build/bench}
mkdir -p "$out"
command -v runc >/dev/null || { echo "runc missing: scripts/setup.sh installs it" >&2; exit 1; }
work=$(mktemp -d)
agent_pid=
cleanup() { [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/bundle"
sed -e 's|"args": \["sh"\]|"args": ["true"]|' -e "s|\"path\": \"rootfs\"|\"path\": \"$build/images/test-bundle/rootfs\"|" \
  "$build/images/test-bundle/config.json" >"$work/bundle/config.json"
"$build/guest-agent/husk-agent" --listen "unix:$work/agent.sock" --state-dir "$work/state" \
  --cgroup-parent /husk-bench --log-level warning 2>"$work/agent.log" &
agent_pid=$!
ctl=("$build/guest-agent/husk-agentctl" --address "unix:$work/agent.sock")
"${ctl[@]}" version >/dev/null
echo "runtime,run,ms" >"$out/agent_start.csv"
for i in $(seq "$n"); do
  t0=$EPOCHREALTIME
  "${ctl[@]}" run --id "b$i" --bundle "$work/bundle" --null-io || { echo "husk run $i failed" >&2; cat "$work/agent.log" >&2; exit 1; }
  t1=$EPOCHREALTIME
  runc run --bundle "$work/bundle" "r$i" </dev/null >/dev/null || { echo "runc run $i failed" >&2; exit 1; }
  t2=$EPOCHREALTIME
  echo "husk-agent,$i,$(ms "$t0" "$t1")" >>"$out/agent_start.csv"
  echo "runc,$i,$(ms "$t1" "$t2")" >>"$out/agent_start.csv"
done
{
  echo "Container create+start+wait+remove of 'true', $n runs each, busybox bundle, this machine directly:"
  printf "  husk-agent (host mode, husk-agentctl run)  p50 %7.2f ms   p90 %7.2f ms\n" "$(pct "$out/agent_start.csv" husk-agent 0.5)" "$(pct "$out/agent_start.csv" husk-agent 0.9)"
  printf "  runc run                                   p50 %7.2f ms   p90 %7.2f ms\n" "$(pct "$out/agent_start.csv" runc 0.5)" "$(pct "$out/agent_start.csv" runc 0.9)"
  printf "  ratio husk/runc: p50 %.2f   p90 %.2f\n" \
    "$(awk -v a="$(pct "$out/agent_start.csv" husk-agent 0.5)" -v b="$(pct "$out/agent_start.csv" runc 0.5)" 'BEGIN{print a/b}')" \
    "$(awk -v a="$(pct "$out/agent_start.csv" husk-agent 0.9)" -v b="$(pct "$out/agent_start.csv" runc 0.9)" 'BEGIN{print a/b}')"
  printf "  husk-agent RSS after the runs: %.2f MiB\n" "$(awk '/VmRSS/ {print $2/1024}' /proc/$agent_pid/status)"
} | tee "$out/agent_start.txt"
