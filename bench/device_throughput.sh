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
. "$src/bench/lib.sh"
runs=${1:-3}
out=${HUSK_BENCH_OUT:-$build/bench}
mkdir -p "$out"
script=$(mktemp)
trap 'rm -f "$script"' EXIT
{ echo "R=$runs"; bench_peer_env "$build/vmm/husk-vmm"; } >"$script"
cat >>"$script" <<'INNER'
dd if=/dev/zero of=/tmp/disk.img bs=1048576 count=64 2>/dev/null
mkdir -p /tmp/share
n=0; while [ $n -lt 500 ]; do head -c 4096 /dev/urandom > /tmp/share/f$n; n=$((n + 1)); done
virtiofsd() {
  rm -f /tmp/vfs.sock
  /usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs.sock -o source=/tmp/share -o cache=none -o sandbox=chroot >/dev/null 2>&1 &
  wait_for 10 "the socket of virtiofsd" test -S /tmp/vfs.sock
}
i=1
while [ $i -le $R ]; do
  "$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 256 --blk /tmp/disk.img \
    --append husk_mode=blkbench | sed -n 's/^BLK_/BENCH vmm=husk run='$i' BLK_/p'
  "$QEMU" $QEMU_MICROVM -serial stdio \
    -drive id=d0,file=/tmp/disk.img,format=raw,if=none -device virtio-blk-device,drive=d0 \
    -kernel "$HUSK_KERNEL" -initrd "$HUSK_INITRD" -append "$GUEST_CMDLINE husk_mode=blkbench" |
    tr -d '\r' | sed -n 's/^BLK_/BENCH vmm=qemu-microvm run='$i' BLK_/p'
  virtiofsd
  "$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 256 --fs hostshare,/tmp/vfs.sock \
    --append husk_mode=fsbench | sed -n 's/^FS_/BENCH vmm=husk run='$i' FS_/p'
  virtiofsd
  "$QEMU" $QEMU_MICROVM -machine memory-backend=mem -serial stdio \
    -object memory-backend-memfd,id=mem,size=256M,share=on \
    -chardev socket,id=vfs,path=/tmp/vfs.sock -device vhost-user-fs-device,chardev=vfs,tag=hostshare \
    -kernel "$HUSK_KERNEL" -initrd "$HUSK_INITRD" -append "$GUEST_CMDLINE husk_mode=fsbench" |
    tr -d '\r' | sed -n 's/^FS_/BENCH vmm=qemu-microvm run='$i' FS_/p'
  rm -f /tmp/v.sock
  "$HUSK_VMM" --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 256 --vsock 3,/tmp/v.sock \
    --append husk_mode=vsocksink >/dev/null &
  vmm=$!
  wait_for 10 "the vsock socket of husk-vmm" test -S /tmp/v.sock
  husk-vsock-test host-source /tmp/v.sock 1234 67108864 | sed -n 's/^HOST_VSOCK_/BENCH vmm=husk run='$i' VSOCK_/p'
  wait $vmm
  "$QEMU" $QEMU_MICROVM -serial null -device vhost-vsock-device,guest-cid=3 \
    -kernel "$HUSK_KERNEL" -initrd "$HUSK_INITRD" -append "$GUEST_CMDLINE husk_mode=vsocksink" >/dev/null &
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
  awk -F, -v m="$2" 'NR==1 || $3==m' "$out/device_throughput.csv" >"$out/metric.csv"
  pct "$out/metric.csv" "$1" 0.5 4 | awk '{printf ($1 == "n/a" ? "%s" : "%.1f"), $1}'
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
