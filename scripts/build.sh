#!/usr/bin/env bash
# Configures and builds husk (binaries, guest kernel, guest initramfs, tests) into build/.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DHUSK_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
