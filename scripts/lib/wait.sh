# Bounded waits for the test and benchmark scripts (sourced; bash). Every wait has a deadline
# scaled by how slow this machine is right now, and says what it waited for when it gives up,
# so a slow or broken step fails with a message instead of hanging the run.
#   time_scale                   prints the slowness factor (1 on an idle machine, ~10-40 under
#                                QEMU TCG or when test hosts share the cores); cached
#   wait_until SECS WHAT CMD...  polls CMD until it succeeds; after SECS x factor prints
#                                "timed out after Ns waiting for WHAT" and returns 1
#   bounded SECS CMD...          runs CMD, killed after SECS x factor (exit status 124)
#   wait_bounded SECS PID WHAT   waits for a background PID; kills it at the deadline

# The time a fixed amount of shell work takes here, against what it takes on an idle machine of
# our kind (~80 ms), rounded up; at least 1.
time_scale() {
  if [ -z "${HUSK_TIME_SCALE:-}" ]; then
    local t0 t1 i=0
    t0=$EPOCHREALTIME
    while [ $i -lt 20000 ]; do i=$((i + 1)); done
    t1=$EPOCHREALTIME
    HUSK_TIME_SCALE=$(awk -v a="$t0" -v b="$t1" 'BEGIN {f = (b - a) / 0.08; f = int(f) + (f > int(f)); print (f < 1 ? 1 : f > 60 ? 60 : f)}')
    export HUSK_TIME_SCALE
  fi
  echo "$HUSK_TIME_SCALE"
}

wait_until() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$(awk -v s="$secs" -v f="$(time_scale)" -v now="$EPOCHREALTIME" 'BEGIN {printf "%.3f", now + s * f}')
  until "$@"; do
    if awk -v d="$deadline" -v now="$EPOCHREALTIME" 'BEGIN {exit !(now > d)}'; then
      echo "timed out after $(awk -v s="$secs" -v f="$(time_scale)" 'BEGIN {print s * f}')s waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}

bounded() {
  local secs=$1
  shift
  timeout -k 5 "$((secs * $(time_scale)))" "$@"
}

wait_bounded() {
  local secs=$1 pid=$2 what=$3
  if ! wait_until "$secs" "$what" eval "! kill -0 $pid 2>/dev/null"; then
    kill -9 "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
}
