#!/usr/bin/env bash
# scripts/install.sh into a staging root: every file the shim's default configuration names
# exists there (binaries executable, the kernel an ELF image, not a dangling link into the
# build's kernel cache), and the installed shim runs.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
fails=0
check() { if [ "$2" = "$3" ]; then echo "PASS $1"; else echo "FAIL $1: expected [$2] got [$3]"; fails=$((fails + 1)); fi; }
DESTDIR=$stage PREFIX=/usr/local HUSK_BUILD=${HUSK_BUILD:?} "$src/scripts/install.sh" >"$stage/install.log" 2>&1
check "install.sh exit status" 0 "$?"
for b in husk husk-vmm husk-jailer containerd-shim-husk-v2 husk-agent husk-agentctl; do
  check "bin/$b installed" yes "$([ -x "$stage/usr/local/bin/$b" ] && [ ! -L "$stage/usr/local/bin/$b" ] && echo yes)"
done
check "kernel is a file" yes "$([ -f "$stage/usr/local/share/husk/vmlinux" ] && [ ! -L "$stage/usr/local/share/husk/vmlinux" ] && echo yes)"
check "kernel is ELF" ELF "$(head -c4 "$stage/usr/local/share/husk/vmlinux" 2>/dev/null | tail -c3)"
check "agent initramfs is a cpio" 070701 "$(head -c6 "$stage/usr/local/share/husk/agent-initramfs.cpio" 2>/dev/null)"
# The defaults compiled into the shim (shim/config.h) are the installed paths.
for p in $(grep -oE '"/usr/local/[^"]+"' "$src/shim/config.h" | tr -d '"'); do
  check "default $p installed" yes "$([ -e "$stage$p" ] && echo yes)"
done
check "shim.json written" vm "$(sed -n 's/.*"mode": "\(.*\)".*/\1/p' "$stage/etc/husk/shim.json")"
"$stage/usr/local/bin/containerd-shim-husk-v2" >/dev/null 2>"$stage/usage"
check "installed shim runs (usage, status 1)" "1 usage" "$? $(grep -o usage "$stage/usage" | head -1)"
# `husk check` audits what was installed (the stage stands in for /): our four files present,
# readable by the jail where it reads them, husk-vmm static.
audit=$("$stage/usr/local/bin/husk" check --root "$stage")
check "husk check: installed files pass" 4 "$(grep -cE '^PASS  (guest kernel|agent initramfs|husk-vmm|husk-jailer): ' <<<"$audit")"
check "husk check: the written shim.json passes" 1 "$(grep -c '^PASS  shim config: ' <<<"$audit")"
echo "INSTALL_TEST_FAILS=$fails"
[ "$fails" = 0 ]
