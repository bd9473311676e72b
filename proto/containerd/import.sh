#!/usr/bin/env bash
# Copies containerd's protos from the Debian -dev packages (Go source trees under
# /usr/share/gocode) to OUT under the same import paths, patched for protoc's C++ generator:
# - `import weak` crashes protoc 3.21's C++ generator: dropped (only gogo and fieldpath options
#   are imported that way);
# - gogoproto and containerd fieldpath options only steer Go code generation and never change
#   the wire format: stripped, with their imports.
# usage: import.sh OUT
set -euo pipefail
out=${1:?usage: import.sh OUT}
src=/usr/share/gocode/src
files=(
  github.com/containerd/containerd/runtime/v2/task/shim.proto
  github.com/containerd/containerd/api/types/mount.proto
  github.com/containerd/containerd/api/types/task/task.proto
  github.com/containerd/containerd/api/events/task.proto
  github.com/containerd/containerd/api/services/ttrpc/events/v1/events.proto
  github.com/containerd/cgroups/v2/stats/metrics.proto
  github.com/containerd/containerd/pkg/runtimeoptions/v1/api.proto
)
for f in "${files[@]}"; do
  [ -f "$src/$f" ] || { echo "missing $src/$f: scripts/setup.sh installs golang-github-containerd-*-dev" >&2; exit 1; }
  mkdir -p "$out/$(dirname "$f")"
  sed -E \
    -e '/^import weak /d' \
    -e '/^[[:space:]]*import "(github.com\/gogo\/protobuf\/)?gogoproto\/gogo.proto";/d' \
    -e '/^[[:space:]]*option \((gogoproto|containerd\.plugin)\./d' \
    -e 's/[[:space:]]*\[\((gogoproto|containerd\.plugin)\.[^]]*\]//g' \
    "$src/$f" >"$out/$f.tmp"
  mv "$out/$f.tmp" "$out/$f"
done
