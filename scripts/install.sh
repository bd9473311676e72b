#!/usr/bin/env bash
# Installs husk where containerd finds it: husk-vmm, containerd-shim-husk-v2, husk-agent and
# husk-agentctl in PREFIX/bin (containerd looks the shim up on its PATH), the guest kernel and
# the agent initramfs in PREFIX/share/husk, and /etc/husk/shim.json (kept if it exists).
# Builds first when build/ has no shim. Then prints the containerd configuration for CRI.
# usage: scripts/install.sh          env: PREFIX (default /usr/local), DESTDIR (staging root)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
[ -x "$build/shim/containerd-shim-husk-v2" ] || "$src/scripts/build.sh"
DESTDIR=$dest cmake --install "$build" --prefix "$prefix"
conf=$dest/etc/husk/shim.json
if [ ! -e "$conf" ]; then
  mkdir -p "$(dirname "$conf")"
  cat >"$conf" <<J
{
  "mode": "vm",
  "vmm": "$prefix/bin/husk-vmm",
  "jailer": "$prefix/bin/husk-jailer",
  "kernel": "$prefix/share/husk/vmlinux",
  "initramfs": "$prefix/share/husk/agent-initramfs.cpio",
  "virtiofsd": "/usr/lib/qemu/virtiofsd",
  "vcpus": 1,
  "memory_mib": 256,
  "log_level": "info"
}
J
  echo "wrote $conf"
else
  echo "kept $conf"
fi
cat <<T

husk is installed. Check this host: $prefix/bin/husk check ctr:   ctr run --runtime io.containerd.husk.v2 IMAGE ID CMD...
CRI (/etc/containerd/config.toml, then restart containerd):
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk]
    runtime_type = "io.containerd.husk.v2"
  # optional: another config file per handler
  # [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.husk.options]
  #   ConfigPath = "/etc/husk/shim.json"
T
