#!/usr/bin/env bash
# Builds the initramfs husk boots containers from: husk-agent as /init with the shared
# libraries it needs, and nothing else (container root filesystems come over virtio-fs or
# virtio-blk). Usage: build-agent-initramfs.sh OUT.cpio HUSK_AGENT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib/cpio.sh"
out=${1:?usage: build-agent-initramfs.sh OUT.cpio HUSK_AGENT}
agent=${2:?usage: build-agent-initramfs.sh OUT.cpio HUSK_AGENT}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{dev,proc,sys,run,tmp,etc}
# The kernel writes init's early output to /dev/console before devtmpfs is mounted.
mknod -m 600 "$root/dev/console" c 5 1
if file_is_static "$agent"; then cp "$agent" "$root/init"; else copy_with_libs "$agent" "$root" /init; fi
# Debug info is a third of the binary; the guest never needs it.
strip --strip-all "$root/init" 2>/dev/null || true
find "$root/lib" "$root/usr" -name '*.so*' -type f -exec strip --strip-debug {} + 2>/dev/null || true
mkdir -p "$(dirname "$out")"
make_cpio "$root" "$out"
