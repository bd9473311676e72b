# Shared helpers for building initramfs images (sourced by images/ and tests/testhost/).

# stage_busybox DIR: a root with busybox-static, an applet symlink for every command, the
# directories an init expects, and /dev/console (without it the kernel has nowhere to send
# init's output before devtmpfs is mounted).
stage_busybox() {
  local root=$1
  # busybox-static's /bin/busybox: no shared libraries to carry along.
  file_is_static /bin/busybox || { echo "/bin/busybox is not static: apt-get install busybox-static" >&2; return 1; }
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,mnt,usr/bin,usr/sbin}
  cp /bin/busybox "$root/bin/busybox"
  local a
  for a in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
  done
  mknod -m 600 "$root/dev/console" c 5 1
  mknod -m 666 "$root/dev/null" c 1 3
}

file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

# copy_with_libs BINARY ROOT DEST: copies a binary and the shared libraries it needs.
copy_with_libs() {
  local bin=$1 root=$2 dest=$3 lib
  mkdir -p "$root/$(dirname "$dest")"
  cp "$bin" "$root/$dest"
  for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$root/$(dirname "$lib")"
    cp -L "$lib" "$root/$lib"
  done
}

# make_cpio ROOT OUT: uncompressed newc archive. Uncompressed on purpose: guests here often run
# under emulation, where unpacking gzip costs far more than the extra bytes (which the VMM maps,
# not copies).
make_cpio() {
  local root=$1 out=$2
  (cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$out.tmp"
  mv "$out.tmp" "$out"
}
