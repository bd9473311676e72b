#!/usr/bin/env bash
# Builds the guest initramfs: busybox-static and images/guest/init. Usage: OUT.cpio
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib/cpio.sh"
out=${1:?usage: build-guest-initramfs.sh OUT.cpio}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
stage_busybox "$root"
install -m 755 "$here/guest/init" "$root/init"
mkdir -p "$(dirname "$out")"
make_cpio "$root" "$out"
