#!/usr/bin/env bash
# Builds the guest initramfs: busybox-static, images/guest/init and the given static tools
# (installed in /bin). Usage: OUT.cpio [TOOL...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib/cpio.sh"
out=${1:?usage: build-guest-initramfs.sh OUT.cpio}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
stage_busybox "$root"
install -m 755 "$here/guest/init" "$root/init"
shift
for tool in "$@"; do
  file_is_static "$tool" || { echo "guest tool $tool must be statically linked" >&2; exit 1; }
  install -m 755 "$tool" "$root/bin/$(basename "$tool")"
done
mkdir -p "$(dirname "$out")"
make_cpio "$root" "$out"
