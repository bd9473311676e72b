#!/usr/bin/env bash
# Builds a small OCI bundle: a busybox-static root filesystem and a config.json with the same
# defaults as `runc spec` (so husk-agent and runc can run the same bundle side by side).
# usage: build-test-bundle.sh OUTDIR [args...]   (args default to "sh")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib/cpio.sh"
out=${1:?usage: build-test-bundle.sh OUTDIR [args...]}
shift
rm -rf "$out"
mkdir -p "$out"
stage_busybox "$out/rootfs"
rm -f "$out/rootfs/dev/console" "$out/rootfs/dev/null"
cat >"$out/rootfs/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
user:x:1000:1000:test user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$out/rootfs/etc/group" <<'G'
root:x:0:
daemon:x:1:
wheel:x:10:user
user:x:1000:
nogroup:x:65534:
G
mkdir -p "$out/rootfs/home/user" && chown 1000:1000 "$out/rootfs/home/user"
# Static test programs (HUSK_BUNDLE_TOOLS, space-separated paths): husk-probe for the isolation tests.
for t in ${HUSK_BUNDLE_TOOLS:-}; do install -D -m 755 "$t" "$out/rootfs/usr/local/bin/$(basename "$t")"; done
args='"sh"'
if [ $# -gt 0 ]; then
  args=
  for a in "$@"; do
    a=$(printf '%s' "$a" | sed 's/\\/\\\\/g; s/"/\\"/g')
    args="$args${args:+, }\"$a\""
  done
fi
caps='"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"'
cat >"$out/config.json" <<J
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": [$args],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {"bounding": [$caps], "effective": [$caps], "permitted": [$caps], "ambient": [$caps]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "runc",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                    "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
J
echo "bundle: $out"
