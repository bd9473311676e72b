# The benchmarks' one prelude (sourced): timing helpers, where QEMU (the peer) comes from in the
# test host, and the one QEMU microvm command line and guest command line every comparison uses.
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/stats.sh"

# run.sh arguments that put QEMU and the qboot firmware -M microvm needs into the test host.
# (Sourced inside the test host too, where there is no QEMU: that must not end the script.)
qemu_testhost_args=(
  --add "$(command -v qemu-system-x86_64 || echo /usr/bin/qemu-system-x86_64):/husk/bin/qemu-system-x86_64"
  --add /usr/share/qemu/qboot.rom:/husk/qemu/qboot.rom
  --add /usr/share/qemu/bios-microvm.bin:/husk/qemu/bios-microvm.bin
  --add /usr/share/qemu/pvh.bin:/husk/qemu/pvh.bin
  --add /usr/share/qemu/linuxboot_dma.bin:/husk/qemu/linuxboot_dma.bin
)

# bench_peer_env VMM: lines for a benchmark's inner script (test host or this machine): $QEMU and
# $QEMU_MICROVM (QEMU microvm as we compare against it: 1 vCPU, 256 MiB, modern virtio-mmio, no
# ACPI) and $GUEST_CMDLINE, husk-vmm's own default command line with QEMU's reset (a triple
# fault: microvm has no i8042). husk-vmm itself runs with its default plus --append.
bench_peer_env() {
  cat <<E
QEMU=\${HUSK_QEMU:-/husk/bin/qemu-system-x86_64}
[ -n "\${HUSK_IN_TESTHOST:-}" ] || QEMU=\${HUSK_QEMU:-qemu-system-x86_64}
QEMU_DATA=/husk/qemu
[ -n "\${HUSK_IN_TESTHOST:-}" ] || QEMU_DATA=/usr/share/qemu
QEMU_MICROVM="-L \$QEMU_DATA -M microvm,acpi=off -accel kvm -cpu host -smp 1 -m 256 -nodefaults -no-user-config -nographic -no-reboot -global virtio-mmio.force-legacy=false"
GUEST_CMDLINE="$("$1" --print-cmdline | sed 's/reboot=k/reboot=t/')"
E
}
