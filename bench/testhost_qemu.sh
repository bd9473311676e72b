# Sourced by the benchmarks: the run.sh arguments that put QEMU (the peer VMM) and the qboot
# firmware it needs for -M microvm into the test host, at /husk/bin and /husk/qemu.
qemu_testhost_args=(
  --add "$(command -v qemu-system-x86_64):/husk/bin/qemu-system-x86_64"
  --add /usr/share/qemu/qboot.rom:/husk/qemu/qboot.rom
  --add /usr/share/qemu/bios-microvm.bin:/husk/qemu/bios-microvm.bin
  --add /usr/share/qemu/pvh.bin:/husk/qemu/pvh.bin
  --add /usr/share/qemu/linuxboot_dma.bin:/husk/qemu/linuxboot_dma.bin
)
