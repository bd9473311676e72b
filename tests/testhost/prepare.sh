#!/usr/bin/env bash
# Fetches the test host's kernel: Debian's cloud kernel (bzImage) and its kvm, kvm-amd,
# kvm-intel, irqbypass, tun, vhost-vsock, veth, bridge, tc (ingress, u32, mirred) and iptables NAT
# (for CNI's portmap plugin) modules, unpacked (not installed) into $HUSK_CACHE/testhost/<version>.
# Prints that directory.
set -euo pipefail
cache=${HUSK_CACHE:-/var/cache/husk}/testhost
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
resolve() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | grep -o 'linux-image-[0-9][^ ]*-cloud-amd64' | head -1; }
pkg=$(resolve)
# Package lists may be missing on a machine whose packages were installed another way.
[ -n "$pkg" ] || { apt-get update -qq >/dev/null 2>&1 || true; pkg=$(resolve); }
[ -n "$pkg" ] || { echo "testhost: cannot resolve linux-image-cloud-amd64 (apt-get update failed?)" >&2; exit 1; }
# Bump the suffix when the module list below changes.
dir=$cache/$pkg-5
if [ ! -f "$dir/ready" ]; then
  echo "testhost: fetching $pkg" >&2
  rm -rf "$dir" "$dir.tmp" && mkdir -p "$dir.tmp/deb"
  (cd "$dir.tmp/deb" && apt-get download "$pkg" >/dev/null 2>&1) ||
    { echo "testhost: apt-get download $pkg failed" >&2; exit 1; }
  dpkg-deb -x "$dir.tmp"/deb/*.deb "$dir.tmp/x"
  cp "$dir.tmp"/x/boot/vmlinuz-* "$dir.tmp/vmlinuz"
  mkdir -p "$dir.tmp/modules"
  for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko arch/x86/kvm/kvm-intel.ko \
    drivers/net/tun.ko net/vmw_vsock/vsock.ko drivers/vhost/vhost_iotlb.ko drivers/vhost/vhost.ko \
    net/vmw_vsock/vmw_vsock_virtio_transport_common.ko drivers/vhost/vhost_vsock.ko \
    drivers/net/veth.ko net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko \
    net/sched/sch_ingress.ko net/sched/cls_u32.ko net/sched/act_mirred.ko \
    lib/libcrc32c.ko net/netfilter/x_tables.ko net/ipv4/netfilter/ip_tables.ko \
    net/ipv4/netfilter/nf_defrag_ipv4.ko net/ipv6/netfilter/nf_defrag_ipv6.ko net/netfilter/nf_conntrack.ko \
    net/netfilter/nf_nat.ko net/ipv4/netfilter/iptable_nat.ko net/netfilter/xt_nat.ko \
    net/netfilter/xt_MASQUERADE.ko net/netfilter/xt_addrtype.ko net/netfilter/xt_comment.ko \
    net/netfilter/xt_mark.ko net/netfilter/xt_multiport.ko net/netfilter/xt_tcpudp.ko; do
    f=$(ls "$dir.tmp"/x/lib/modules/*/kernel/$m*)
    case "$f" in
      *.xz) xz -dc "$f" >"$dir.tmp/modules/$(basename "$m")" ;;
      *.zst) zstd -qdc "$f" >"$dir.tmp/modules/$(basename "$m")" ;;
      *) cp "$f" "$dir.tmp/modules/" ;;
    esac
  done
  rm -rf "$dir.tmp/x" "$dir.tmp/deb"
  touch "$dir.tmp/ready"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
