#!/usr/bin/env bash
# Runs a command as on a machine of our kind that has no /dev/kvm at all (kvm_pvm still listed
# in sysfs, no device): in a private mount namespace whose /dev is a copy of this one without
# the kvm node. Nothing changes outside that namespace.
# usage: tests/without_kvm.sh CMD [ARGS...]     e.g. tests/without_kvm.sh scripts/test.sh
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
exec unshare --mount --propagation private bash -c '
  set -euo pipefail
  stage=$(mktemp -d /tmp/husk-nokvm-dev.XXXXXX)
  mount -t tmpfs -o mode=755,size=1m husk-nokvm-dev "$stage"
  for e in /dev/* /dev/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n=${e##*/}
    [ "$n" = kvm ] && continue
    if mountpoint -q "$e"; then
      if [ -d "$e" ]; then mkdir "$stage/$n"; else touch "$stage/$n"; fi
      mount --rbind "$e" "$stage/$n"
    else
      cp -a "$e" "$stage/$n"   # device nodes stay device nodes; directories are copied whole
    fi
  done
  mount --move "$stage" /dev
  rmdir "$stage" 2>/dev/null || true
  [ ! -e /dev/kvm ] || { echo "without_kvm: /dev/kvm is still there" >&2; exit 1; }
  exec "$@"' without_kvm "$@"
