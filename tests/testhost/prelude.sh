# Prepended by run.sh to every script it runs (POSIX sh: busybox in the test host). Bounded
# waits that say what they waited for, so a failed step fails instead of hanging the run.
#   wait_for SECS WHAT CMD...   polls CMD every 0.1 s; after SECS prints WAIT_TIMEOUT and fails
#   wait_pid SECS PID WHAT      waits for a background child; kills it at the deadline; returns
#                               its exit status (137 when it had to be killed)
wait_for() {
  _wf_secs=$1 _wf_what=$2
  shift 2
  _wf_n=$((_wf_secs * 10))
  until "$@" >/dev/null 2>&1; do
    _wf_n=$((_wf_n - 1))
    if [ "$_wf_n" -le 0 ]; then
      echo "WAIT_TIMEOUT: ${_wf_secs}s waiting for $_wf_what"
      return 1
    fi
    sleep 0.1
  done
}
_exited() { [ ! -d "/proc/$1" ] || grep -q '^[0-9]* (.*) [ZX] ' "/proc/$1/stat" 2>/dev/null; }
wait_pid() {
  wait_for "$1" "$3" _exited "$2" || kill -9 "$2" 2>/dev/null
  wait "$2"
}
