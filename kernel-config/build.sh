#!/usr/bin/env bash
# Builds the husk guest kernel (vmlinux) from Debian's linux-source-6.12 with our fragment on
# top of tinyconfig, and prints the path of the result. `--link PATH` also points a symlink
# at it (the CMake build uses build/images/vmlinux).
#
# The output is cached outside the clone, under $HUSK_CACHE (default /var/cache/husk), keyed by
# the hash of the fragment, the recipe version below and the source package version: a second
# run with nothing changed prints the cached path at once.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
link=
if [ "${1:-}" = --link ]; then link=${2:?--link needs a path}; fi
finish() {
  if [ -n "$link" ]; then mkdir -p "$(dirname "$link")" && ln -sfn "$1" "$link"; fi
  echo "$1"
  exit 0
}
fragment=$here/husk.config
cache=${HUSK_CACHE:-/var/cache/husk}
src_tar=/usr/src/linux-source-6.12.tar.xz

log() { echo "kernel-config: $*" >&2; }

[ -f "$src_tar" ] || { log "missing $src_tar: run scripts/setup.sh (apt-get install linux-source-6.12)"; exit 1; }
src_version=$(dpkg-query -W -f '${Version}' linux-source-6.12)
# Bump when a change to this script changes the kernel it produces.
recipe=2
key=$(cat "$fragment" <(echo "recipe=$recipe source=$src_version") | sha256sum | cut -c1-16)
out=$cache/kernel/$key
[ -f "$out/vmlinux" ] && finish "$out/vmlinux"

mkdir -p "$cache/kernel"
# One builder at a time (parallel ctest or two shells); the loser waits and finds the cache.
exec 9>"$cache/kernel/.lock"
flock 9
[ -f "$out/vmlinux" ] && finish "$out/vmlinux"

srcdir=$cache/kernel/src-$src_version
if [ ! -f "$srcdir/Makefile" ]; then
  log "unpacking linux-source $src_version"
  rm -rf "$srcdir.tmp" && mkdir -p "$srcdir.tmp"
  tar -xf "$src_tar" -C "$srcdir.tmp" --strip-components=1
  mv "$srcdir.tmp" "$srcdir"
fi

rm -rf "$cache"/kernel/build-*  # leftovers of interrupted builds
build=$cache/kernel/build-$key
rm -rf "$build" && mkdir -p "$build"
log "configuring (tinyconfig + husk.config) in $build"
make -s -C "$srcdir" O="$build" tinyconfig >/dev/null
"$srcdir/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" >/dev/null
make -s -C "$srcdir" O="$build" olddefconfig >/dev/null

# Every option we asked for must be in the final config; Kconfig drops unmet ones silently.
missing=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*)
      grep -qxF "$line" "$build/.config" || { log "not applied: $line"; missing=1; } ;;
    "# CONFIG_"*" is not set")
      opt=${line#\# }; opt=${opt%% *}
      if grep -q "^$opt=" "$build/.config"; then log "still set: $opt"; missing=1; fi ;;
  esac
done <"$fragment"
[ "$missing" = 0 ] || { log "config fragment did not apply cleanly"; exit 1; }

log "building vmlinux with $(nproc) jobs (a few minutes, once per config)"
start=$(date +%s)
make -s -C "$srcdir" O="$build" -j"$(nproc)" vmlinux >"$build/build.log" 2>&1 || {
  tail -50 "$build/build.log" >&2; log "kernel build failed"; exit 1; }
log "built in $(( $(date +%s) - start )) s"

mkdir -p "$out.tmp"
# Symbols are not needed to boot; stripping makes the file the VMM maps several times smaller.
strip -o "$out.tmp/vmlinux" "$build/vmlinux"
cp "$build/.config" "$out.tmp/config"
# Symbols for reading a hung guest's addresses (QEMU's monitor, crash logs); not booted.
cp "$build/System.map" "$out.tmp/System.map"
rm -rf "$out" && mv "$out.tmp" "$out"
rm -rf "$build"
finish "$out/vmlinux"
