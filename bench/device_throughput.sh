#!/usr/bin/env bash
# Device throughput, husk-vmm beside QEMU microvm in one test host run (or directly on hardware
# KVM), same guest kernel and initramfs. Each VMM boots R times per device (default 3); medians.
#  - virtio-blk: husk-blkbench on /dev/vda (64 MiB raw image, O_DIRECT): sequential 1 MiB writes
#    then reads of 32 MiB, then 2000 4 KiB reads at pseudo-random offsets.
#  - virtio-fs: 500 files of 4 KiB shared by virtiofsd (cache=none); the guest opens, reads
#    and closes each (husk-blkbench --files). QEMU gets the same virtiofsd and a memfd backend.
#  - vsock: the host streams 64 MiB into a guest sink (husk-vsock-test); husk through its unix
#    socket, QEMU through vhost-vsock (AF_VSOCK on the test host).
# usage: bench/device_throughput.sh [R]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HUSK_BUILD:-$src/build}
. "$src/bench/testhost_qemu.sh"
runs=${1:-3}
out=${HUSK_BENCH_OUT:-$build/bench}
mkdir -p "$out"
script=$(mktemp)
trap 'rm -f "$script"' EXIT
echo "R=$runs" >"$script"
cat >>"$script" <<'INNER'
qemu=${HUSK_QEMU:-/husk/bin/qemu-system-x86_64}
qemu_data=${HUSK_QEMU_DATA:-/husk/qemu}
C="console=ttyS0 panic=-1 no_timer_check 8250.nr_uarts=1 quiet husk_mode=blkbench"
dd if=/dev/zero of=/tmp/disk.img bs=1048576 count=64 2>/dev/null
mkdir -p /tmp/share
n=0; while [ $n -lt 500 ]; do head -c 4096 /dev/urandom > /tmp/share/f$n; n=$((n + 1)); done
virtiofsd() {
  rm -f /tmp/vfs.sock
  /usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs.sock -o source=/tmp/share -o cache=none -o sandbox=chroot >/dev/null 2>&1 &
  for w in $(seq 100); do [ -S /tmp/vfs.sock ] && break; sleep 0.1; done
}
i=1
while [ $i -le $R ]; do
  "$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 256 --blk /tmp/disk.img \
    --cmdline "reboot=k $C" | sed -n 's/^BLK_/BENCH vmm=husk run='$i' BLK_/p'
  "$qemu" -L "$qemu_data" -M microvm,acpi=off -accel kvm -cpu host -smp 1 -m 256 \
    -nodefaults -no-user-config -nographic -no-reboot -serial stdio -global virtio-mmio.force-legacy=false \
    -drive id=d0,file=/tmp/disk.img,format=raw,if=none -device virtio-blk-device,drive=d0 \
    -kernel "$HUSK_KERNEL" -initrd "$HUSK_INITRD" -append "reboot=t $C" |
    tr -d '\r' | sed -n 's/^BLK_/BENCH vmm=qemu-microvm run='$i' BLK_/p'
  F="console=ttyS0 panic=-1 no_timer_check 8250.nr_uarts=1 quiet husk_mode=fsbench"
  virtiofsd
  "$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 256 --fs hostshare,/tmp/vfs.sock \
    --cmdline "reboot=k $F" | sed -n 's/^FS_/BENCH vmm=husk run='$i' FS_/p'
  virtiofsd
  "$qemu" -L "$qemu_data" -M microvm,acpi=off,memory-backend=mem -accel kvm -cpu host -smp 1 -m 256 \
    -object memory-backend-memfd,id=mem,size=256M,share=on \
    -nodefaults -no-user-config -nographic -no-reboot -serial stdio -global virtio-mmio.force-legacy=false \
    -chardev socket,id=vfs,path=/tmp/vfs.sock -device vhost-user-fs-device,chardev=vfs,tag=hostshare \
    -kernel "$HUSK_KERNEL" -initrd "$HUSK_INITRD" -append "reboot=t $F" |
    tr -d '\r' | sed -n 's/^FS_/BENCH vmm=qemu-microvm run='$i' FS_/p'
  V="console=ttyS0 panic=-1 no_timer_check 8250.nr_uarts=1 quiet husk_mode=vsocksink"
  rm -f /tmp/v.sock
  "$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 256 --vsock 3,/tmp/v.sock \
    --cmdline "reboot=k $V" >/dev/null &
  vmm=$!
  for w in $(seq 100); do [ -S /tmp/v.sock ] && break; sleep 0.1; done
  husk-vsock-test host-source /tmp/v.sock 1234 67108864 | sed -n 's/^HOST_VSOCK_/BENCH vmm=husk run='$i' VSOCK_/p'
  wait $vmm
  "$qemu" -L "$qemu_data" -M microvm,acpi=off -accel kvm -cpu host -smp 1 -m 256 \
    -nodefaults -no-user-config -nographic -no-reboot -serial null -global virtio-mmio.force-legacy=false \
    -device vhost-vsock-device,guest-cid=3 \
    -kernel "$HUSK_KERNEL" -initrd "$HUSK_INITRD" -append "reboot=t $V" >/dev/null &
  vmm=$!
  husk-vsock-test host-source vsock:3 1234 67108864 | sed -n 's/^HOST_VSOCK_/BENCH vmm=qemu-microvm run='$i' VSOCK_/p'
  wait $vmm
  i=$((i + 1))
done
INNER
echo "virtio-blk throughput: $runs boots each of husk-vmm and QEMU microvm"
HUSK_BUILD=$build "$src/tests/testhost/run.sh" --timeout 3000 \
  "${qemu_testhost_args[@]}" --add /usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd \
  "$script" | tee "$out/device_throughput.log" | grep '^BENCH' >"$out/device_throughput.raw"

echo "vmm,run,metric,value" >"$out/device_throughput.csv"
sed -E 's/^BENCH vmm=([^ ]+) run=([0-9]+) (BLK|FS|VSOCK)_([A-Z_]+)=([0-9.]+).*/\1,\2,\3_\4,\5/' "$out/device_throughput.raw" >>"$out/device_throughput.csv"
median() {  # median VMM METRIC
  awk -F, -v v="$1" -v m="$2" '$1==v && $3==m {print $4}' "$out/device_throughput.csv" | sort -g |
    awk '{a[NR]=$1} END {if (NR) printf "%.1f", a[int((NR+1)/2)]; else print "n/a"}'
}
{
  echo "virtio-blk, virtio-fs and vsock inside the test host (emulated: compare the ratios), medians of $runs:"
  for m in BLK_SEQ_WRITE_MBPS BLK_SEQ_READ_MBPS BLK_RAND_READ_IOPS FS_FILES_PER_SEC FS_READ_MBPS VSOCK_MBPS; do
    h=$(median husk "$m") q=$(median qemu-microvm "$m")
    printf "  %-18s husk-vmm %9s   qemu-microvm %9s   husk/qemu %s\n" "$m" "$h" "$q" \
      "$(awk -v a="$h" -v b="$q" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a"}')"
  done
} | tee "$out/device_throughput.txt"
grep -q 'n/a' "$out/device_throughput.txt" && { echo "device throughput: a run produced no figures; see $out/device_throughput.log" >&2; exit 1; }
exit 0
