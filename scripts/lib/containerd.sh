# A private containerd for the shim's tests and benchmarks (sourced): own root, state and
# socket under CTD_DIR, the CRI plugin off (on with CTD_CRI=1; CTD_CRI_EXTRA: TOML appended to its
# configuration, e.g. another runtime handler), containerd-shim-husk-v2 from CTD_SHIM_DIR first on
# its PATH and HUSK_SHIM_CONFIG=$CTD_DIR/shim.json (the caller writes that file). Its waits are
# bounded (wait.sh, sourced here too).
#   CTD_DIR=... CTD_SHIM_DIR=... ctd_start    (again after a kill: a restart)
#   ctr ARGS...                               (talks to it)
#   ctd_stop
#   trap ctd_cleanup EXIT
. "$(dirname "${BASH_SOURCE[0]}")/wait.sh"

ctd_start() {
  local nopivot=false
  [ -z "${HUSK_RUNC_NO_PIVOT:-}" ] || nopivot=true
  if [ ! -f "$CTD_DIR/config.toml" ] && [ -n "${CTD_CRI:-}" ]; then
    # CTD_CRI=1: the CRI plugin on, as a Kubernetes node has it: runtime handler "husk", CNI
    # plugins from Debian's containernetworking-plugins, configs in CTD_DIR/cni (the caller's),
    # the sandbox image docker.io/husk/pause:latest (the caller imports it into k8s.io).
    cat >"$CTD_DIR/config.toml" <<T
version = 2
root = "$CTD_DIR/root"
state = "$CTD_DIR/state"
[grpc]
  address = "$CTD_DIR/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/husk/pause:latest"
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        NoPivotRoot = $nopivot
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk]
      runtime_type = "io.containerd.husk.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CTD_CNI_BIN:-/usr/lib/cni}"
    conf_dir = "$CTD_DIR/cni"
${CTD_CRI_EXTRA:-}
T
  fi
  [ -f "$CTD_DIR/config.toml" ] || cat >"$CTD_DIR/config.toml" <<T
version = 2
root = "$CTD_DIR/root"
state = "$CTD_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTD_DIR/containerd.sock"
T
  rm -f "$CTD_DIR/containerd.sock"
  PATH=$CTD_SHIM_DIR:$PATH HUSK_SHIM_CONFIG=$CTD_DIR/shim.json containerd --config "$CTD_DIR/config.toml" \
    >>"$CTD_DIR/containerd.log" 2>&1 &
  ctd=$!
  wait_until 30 "containerd to answer on $CTD_DIR/containerd.sock" \
    command ctr --address "$CTD_DIR/containerd.sock" version >/dev/null 2>&1 || tail -5 "$CTD_DIR/containerd.log" >&2
}

# cni_bridge_conf NAME SUBNET [portmap]: a CNI network in CTD_DIR/cni as CTD_CRI's configuration
# reads it (bridge NAME0 with the gateway, host-local addresses from SUBNET, a default route; with
# "portmap", the portmap plugin for the pods' host ports, as Kubernetes' default CNI configs
# chain it), and the node files the CRI plugin copies into each pod (the test host has none).
cni_bridge_conf() {
  local portmap=""
  [ "${3:-}" != portmap ] || portmap=',
  {"type": "portmap", "capabilities": {"portMappings": true}}'
  mkdir -p "$CTD_DIR/cni"
  cat >"$CTD_DIR/cni/10-$1.conflist" <<J
{"cniVersion": "1.0.0", "name": "$1", "plugins": [
  {"type": "bridge", "bridge": "${1//-/}0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$2"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$CTD_DIR/cni-ipam"}}$portmap]}
J
  [ -e /etc/hosts ] || printf '127.0.0.1 localhost\n' >/etc/hosts
  [ -e /etc/resolv.conf ] || : >/etc/resolv.conf
}

ctd_stop() {
  [ -n "${ctd:-}" ] || return 0
  kill "$ctd" 2>/dev/null
  wait "$ctd" 2>/dev/null
  ctd=
}

# ctd_cleanup: containerd, every shim it started and what they left (sandbox helpers under
# CTD_DIR/run, mounts under CTD_DIR), then CTD_DIR itself. For an EXIT trap.
ctd_cleanup() {
  local p m
  ctd_stop
  for p in $(pids_of "containerd-shim-.*-address $CTD_DIR|$CTD_DIR/run/"); do kill -9 "$p" 2>/dev/null; done
  wait_until 10 "killed shims and helpers to exit" eval "[ -z \"\$(pids_of 'containerd-shim-.*-address $CTD_DIR|$CTD_DIR/run/')\" ]"
  grep -o " $CTD_DIR[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$CTD_DIR"
}

# Each ctr command has a deadline (scaled to this machine): a hung call fails the step and says
# so, with containerd's (and the shims') last words.
ctr() {
  local rc=0
  bounded 60 "$(type -P ctr)" --address "$CTD_DIR/containerd.sock" "$@" || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "TIMEOUT: ctr $* did not return in $((60 * $(time_scale)))s; containerd.log:" >&2
    tail -30 "$CTD_DIR/containerd.log" >&2
    # The husk sandboxes' own logs (guest console, husk-vmm, virtiofsd): what the guest did last.
    local f
    for f in $(find "$CTD_DIR/run" -name '*.log' -mmin -30 2>/dev/null); do
      echo "== $f (end):" >&2
      tail -c 3000 "$f" >&2
    done
  fi
  return "$rc"
}

# Scripts that run containerd in the test host (tests/testhost/run.sh) find the tree's files
# under HUSK_SRC: /husk/src there (ctd_testhost_adds and the caller's --add put them there
# under their tree paths), the tree itself directly on hardware KVM.

# ctd_testhost_adds BUILD: run.sh --add arguments that bring containerd, ctr, runc and its shim,
# husk's shim, the agent image, the OCI image, virtiofsd and this library into the test host
# (programs in /husk/bin, images in /husk/images, this library under /husk/src).
ctd_testhost_adds() {
  local build=$1 lib
  lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  printf -- '--add %s\n' \
    "$build/shim/containerd-shim-husk-v2:/husk/bin/containerd-shim-husk-v2" \
    "$build/images/agent-initramfs.cpio:/husk/images/agent-initramfs.cpio" \
    "$build/images/busybox-oci.tar:/husk/images/busybox-oci.tar" \
    "$build/guest-agent/husk-agentctl:/husk/bin/husk-agentctl" \
    "$build/cli/husk:/husk/bin/husk" \
    "$(type -P curl):/husk/bin/curl" \
    "/usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd" \
    "$(type -P containerd):/husk/bin/containerd" \
    "$(type -P ctr):/husk/bin/ctr" \
    "$(type -P containerd-shim-runc-v2):/husk/bin/containerd-shim-runc-v2" \
    "$(type -P runc):/husk/bin/runc" \
    "$(type -P script):/husk/bin/script" \
    "/bin/bash:/husk/bin/bash" \
    "$(type -P ip):/husk/bin/ip" \
    "$(type -P tc):/husk/bin/tc" \
    "$lib/containerd.sh:/husk/src/scripts/lib/containerd.sh" \
    "$lib/stats.sh:/husk/src/scripts/lib/stats.sh" \
    "$lib/wait.sh:/husk/src/scripts/lib/wait.sh"
}

# cri_testhost_adds BUILD: what a CRI script needs in the test host beside ctd_testhost_adds:
# the CNI plugins, husk-cri, the pause image, and iptables for portmap (the legacy backend: the
# test host kernel gets x_tables NAT modules, not nf_tables; the binary picks its mode by name).
cri_testhost_adds() {
  local p xt
  for p in bridge host-local loopback portmap; do printf -- '--add /usr/lib/cni/%s:/husk/cni/%s\n' "$p" "$p"; done
  xt=$(dirname "$(ls /usr/lib/*/xtables/libxt_comment.so | head -1)")
  printf -- '--add %s\n' "$1/tests/cri/husk-cri:/husk/bin/husk-cri" "$1/images/pause-oci.tar:/husk/images/pause-oci.tar" \
    "$(type -P xtables-legacy-multi):/husk/bin/iptables" "$xt:/husk/xtables"
}

# cri_testhost_env BUILD: ctd_testhost_env's lines for CRI: where husk-cri, the pause image and
# the CNI plugins are (in the test host, or the build tree where hardware KVM runs it directly).
cri_testhost_env() {
  echo "export HUSK_CRI=\${HUSK_CRI:-$1/tests/cri/husk-cri} HUSK_PAUSE_IMAGE=\$HUSK_ROOT/images/pause-oci.tar"
  echo "[ -z \"\${HUSK_IN_TESTHOST:-}\" ] || export HUSK_CRI=/husk/bin/husk-cri CTD_CNI_BIN=/husk/cni XTABLES_LIBDIR=/husk/xtables"
}

# ctd_testhost_bench SRC BUILD OUT NAME TIMEOUT ARGS...: runs bench/NAME.sh ARGS inside the test
# host with containerd (HUSK_BENCH_INNER=1 tells the script it is inside), printing and keeping its
# output in OUT/NAME.txt; returns the test host's status.
ctd_testhost_bench() {
  local src=$1 build=$2 out=$3 name=$4 timeout=$5 script
  shift 5
  mkdir -p "$out"
  script=$(mktemp)
  {
    ctd_testhost_env "$src"
    echo "export HUSK_BENCH_INNER=1 HUSK_BENCH_OUT=/tmp/bench"
    echo "bash \$HUSK_SRC/bench/$name.sh $*"
  } >"$script"
  # shellcheck disable=SC2046  # one --add pair per line, no spaces in the paths
  HUSK_BUILD=$build "$src/tests/testhost/run.sh" --timeout "$timeout" --mem "${HUSK_BENCH_MEM:-3072}" --cpus "${HUSK_BENCH_CPUS:-1}" \
    --add "$src/bench/$name.sh:/husk/src/bench/$name.sh" --add "$src/bench/lib.sh:/husk/src/bench/lib.sh" \
    $(ctd_testhost_adds "$build") "$script" | tee "$out/$name.txt"
  local rc=${PIPESTATUS[0]}
  rm -f "$script"
  return "$rc"
}

# ctd_testhost_env SRC: the first lines of a run.sh script: bash (this library needs it),
# HUSK_SRC, where the shim and the images are, and runc's --no-pivot where the root is an
# initramfs (the test host).
ctd_testhost_env() {
  cat <<E
[ -n "\${BASH_VERSION:-}" ] || exec bash "\$0" "\$@"  # the test host runs scripts with busybox sh
export HUSK_SRC=$1 HUSK_SHIM_DIR=\$HUSK_ROOT/shim HUSK_AGENT_INITRD=\$HUSK_ROOT/images/agent-initramfs.cpio
export HUSK_OCI_IMAGE=\$HUSK_ROOT/images/busybox-oci.tar HUSK_CLI=\$HUSK_ROOT/cli/husk
[ -z "\${HUSK_IN_TESTHOST:-}" ] || export HUSK_SRC=/husk/src HUSK_SHIM_DIR=/husk/bin HUSK_CLI=/husk/bin/husk HUSK_RUNC_NO_PIVOT=1
E
}

# shim_socket ID: where containerd-shim-husk-v2 listens for task (or sandbox) ID of this
# containerd in $CONTAINERD_NAMESPACE: /run/containerd/s/husk-<FNV-1a of "address/ns/id"> (the
# shim's socket_path). Bash's 64-bit arithmetic wraps like the hash's.
shim_socket() {
  local key="$CTD_DIR/containerd.sock/$CONTAINERD_NAMESPACE/$1" h=-3750763034362895579 i c
  for ((i = 0; i < ${#key}; i++)); do
    printf -v c '%d' "'${key:i:1}"
    h=$(( (h ^ c) * 1099511628211 ))
  done
  printf '/run/containerd/s/husk-%016x\n' "$h"
}

# procs REGEX: how many processes have a command line matching REGEX (the test host has no pgrep).
procs() {
  pids_of "$1" | wc -l
}

# pids_of REGEX: the pids whose command line matches REGEX.
pids_of() {
  local f c
  for f in /proc/[0-9]*/cmdline; do
    [ "$f" = /proc/$$/cmdline ] || [ "$f" = /proc/$BASHPID/cmdline ] && continue
    c=$(tr '\0' ' ' 2>/dev/null <"$f") || continue  # gone meanwhile
    [[ $c =~ $1 ]] && echo "${f//[^0-9]/}"
  done
}
