#!/usr/bin/env bash
# husk-vmm built with ASan+UBSan (husk-vmm-asan) boots guests that drive every device: block (rate
# limited) + rng, virtio-fs, virtio-net, vsock with 8 parallel streams each way. Fails on any
# sanitizer report, a wrong exit status or a missing result. A ctest entry (testhost label).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
asan_vmm=${1:-${HUSK_BUILD:-$src/build}/vmm/husk-vmm-asan}
[ -x "$asan_vmm" ] || { echo "asan_devices: build $asan_vmm first" >&2; exit 1; }
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<'INNER'
V=/husk/bin/husk-vmm-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
dd if=/dev/zero of=/tmp/disk.img bs=1048576 count=8 2>/dev/null
$V --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --blk /tmp/disk.img,bw=524288 --rng --append husk_mode=blk >/tmp/o1 2>&1
echo "ASAN_BLK_EXIT=$?"
mkdir -p /tmp/share && echo hi > /tmp/share/hello.txt
/usr/lib/qemu/virtiofsd --socket-path=/tmp/vfs.sock -o source=/tmp/share -o cache=none -o sandbox=chroot >/dev/null 2>&1 &
wait_for 10 "the socket of virtiofsd" test -S /tmp/vfs.sock
$V --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --fs hostshare,/tmp/vfs.sock --append husk_mode=fs >/tmp/o2 2>&1
echo "ASAN_FS_EXIT=$?"
tunctl -t husktap0 >/dev/null && ip link set husktap0 up && ip addr add 172.30.0.1/24 dev husktap0
yes x | head -c 65536 > /tmp/p
nc -l -p 5000 -e cat /tmp/p &
$V --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --net husktap0,pps=2000,rx_pps=3000 --append husk_mode=net >/tmp/o3 2>&1
echo "ASAN_NET_EXIT=$?"
husk-vsock-test host-echo /tmp/v.sock_5000 &
$V --kernel "$HUSK_KERNEL" --initrd "$HUSK_INITRD" --mem 512 --vsock 3,/tmp/v.sock --append husk_mode=vsock >/tmp/o4 2>&1 &
vmm=$!
husk-vsock-test host-client /tmp/v.sock 1234 8 262144
wait_pid 250 $vmm husk-vmm
echo "ASAN_VSOCK_EXIT=$?"
cat /tmp/o1 /tmp/o2 /tmp/o3 /tmp/o4
INNER
out=$("$src/tests/testhost/run.sh" --add "$asan_vmm:/husk/bin/husk-vmm-asan" \
  --add /usr/lib/qemu/virtiofsd:/usr/lib/qemu/virtiofsd "$script" 2>&1) || true
fail=0
for k in ASAN_BLK_EXIT ASAN_FS_EXIT ASAN_NET_EXIT ASAN_VSOCK_EXIT; do
  grep -q "^$k=0$" <<<"$out" || { echo "asan_devices: $k is not 0"; fail=1; }
done
for k in GUEST_WRITE=ok GUEST_FS_WRITE=ok GUEST_PING=ok GUEST_GOT_BYTES=65536 HOST_CLIENT_OK=8 GUEST_CLIENT_OK=8; do
  grep -q "^$k$" <<<"$out" || { echo "asan_devices: missing $k"; fail=1; }
done
if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" <<<"$out"; then
  echo "asan_devices: sanitizer report"
  fail=1
fi
if [ $fail = 1 ]; then
  echo "$out" | tail -80
  echo "asan device run: FAILED"
  exit 1
fi
echo "asan device run: blk, rng, fs, net, vsock clean under ASan+UBSan"
