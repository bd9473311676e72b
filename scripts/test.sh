#!/usr/bin/env bash
# Command 2 of the README: every test. Builds the main configuration (Release: unit, host,
# conformance and the tests that boot real guests, in the test host where there is no hardware
# KVM, including husk-vmm-asan under ordinary and hostile guests), an ASan/UBSan configuration
# for the unit tests, and the libFuzzer targets for a short run each.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
"$src/scripts/setup.sh"
. "$src/scripts/lib/kvm.sh"
start=$SECONDS
case $(kvm_kind) in
  hardware) echo "== this machine: hardware KVM: guests boot directly" ;;
  *) echo "== this machine: $(kvm_describe): tests that boot guests run inside the test host (QEMU TCG + nested KVM)" ;;
esac

echo "== build (Release, what users and packagers build) and all tests"
"$src/scripts/build.sh" >/dev/null
ctest --test-dir "$src/build" -j"$jobs" --output-on-failure --timeout 900

echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S "$src" -B "$src/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHUSK_SANITIZE=ON -DHUSK_WERROR=ON \
  -DHUSK_GUEST_IMAGES=OFF >/dev/null
cmake --build "$src/build-asan" -j"$jobs" --target husk_unit_tests >/dev/null  # only what -L unit runs
ctest --test-dir "$src/build-asan" -L unit -j"$jobs" --output-on-failure

echo "== shim, ttrpc and agent tests under ThreadSanitizer"
cmake -S "$src" -B "$src/build-tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUSK_TSAN=ON -DHUSK_WERROR=ON \
  -DHUSK_GUEST_IMAGES=OFF >/dev/null
cmake --build "$src/build-tsan" -j"$jobs" --target husk_unit_tests husk_host_tests husk-agent >/dev/null
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$src/tests/tsan.supp" ctest --test-dir "$src/build-tsan" -j"$jobs" --output-on-failure \
  -R '^(Ttrpc|Shim|ProcessState|ConfigFile|VmSize|TaskServiceTest|Oci|Seccomp|AgentHost|ShareTest)'

echo "== fuzz targets (short runs; see README for long runs)"
CXX=clang++ cmake -S "$src" -B "$src/build-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUSK_WERROR=ON \
  -DHUSK_FUZZ=ON -DHUSK_GUEST_IMAGES=OFF >/dev/null
cmake --build "$src/build-fuzz" -j"$jobs" --target fuzz_targets >/dev/null
ctest --test-dir "$src/build-fuzz" -L fuzz -j"$jobs" --output-on-failure

echo "== all tests passed on this machine ($(kvm_describe)) in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s"
