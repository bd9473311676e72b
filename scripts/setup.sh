#!/usr/bin/env bash
# Installs everything husk needs to build, test and benchmark on Debian bookworm (as root, or
# through sudo). Idempotent: when every package is present it does nothing.
set -euo pipefail
packages=(
  # build
  cmake ninja-build g++ clang libclang-rt-14-dev pkg-config
  # libraries: KVM headers, Boost.Asio, libfdt (aarch64 device trees), CLI11, GoogleTest
  linux-libc-dev libboost-dev libfdt-dev libcli11-dev libgtest-dev googletest
  # later components: protobuf/gRPC (agent, shim), JSON, seccomp, capabilities
  protobuf-compiler libprotobuf-dev libgrpc++-dev protobuf-compiler-grpc nlohmann-json3-dev
  libseccomp-dev libcap-dev libssl-dev
  # netlink (pod networking in the shim, guest interfaces in the agent); ip netns and tc for its tests
  libnl-3-dev libnl-route-3-dev iproute2
  # the CRI test: CNI plugins (bridge, host-local, loopback, portmap) and iptables for portmap
  containernetworking-plugins iptables
  # the agent's conformance suite and benchmark run the same bundles under runc
  runc
  # the shim's tests: a private containerd, ctr, and the runc shim as the reference
  containerd
  # the shim: containerd's protos (Go source packages that ship the .proto files)
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev
  golang-github-gogo-googleapis-dev golang-github-containerd-cgroups-dev
  # guest kernel: Debian's 6.12 source and its build dependencies
  linux-source-6.12 bc flex bison libelf-dev libssl-dev dwarves xz-utils
  # guest images and the test host (QEMU TCG with emulated SVM, busybox); curl drives husk-vmm's
  # control API in tests as Firecracker's users drive theirs (curl --unix-socket)
  qemu-system-x86 busybox-static cpio curl
  # benchmark plots
  gnuplot-nox
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
