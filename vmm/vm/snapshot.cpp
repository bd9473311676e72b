// Pause, resume, snapshot and restore of a MicroVm.
// A snapshot is two files: the state (vmm/snapshot/format.h: machine, KVM's VM and vCPU state,
// the serial port, each virtio transport with its queues) and guest memory as a flat file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/inherited_fd.h"
#include "common/log.h"
#include "vmm/vm/microvm.h"

namespace husk {
namespace {
constexpr auto kPauseTimeout = std::chrono::seconds(5);
constexpr uint64_t kMaxRamBytes = uint64_t{1} << 40;

// Where a snapshot file goes: a path, created 0600, or "fd=N", an inherited regular file open
// for writing (a jailed husk-vmm can create no file: the shim hands it the template's files).
Result<UniqueFd> open_output(const std::string& spec) {
  int n = -1;
  if (!is_fd_spec(spec, &n)) {
    UniqueFd fd(::open(spec.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return make_error("cannot create %s: %s", spec.c_str(), std::strerror(errno));
    return fd;
  }
  struct stat st{};
  int flags = n >= 3 ? ::fcntl(n, F_GETFL) : -1;
  if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY || ::fstat(n, &st) != 0 || !S_ISREG(st.st_mode))
    return make_error(ErrorCode::kInvalidArgument, "%s is not an inherited regular file open for writing", spec.c_str());
  UniqueFd fd(::fcntl(n, F_DUPFD_CLOEXEC, 3));
  if (!fd) return make_error("%s: %s", spec.c_str(), std::strerror(errno));
  return fd;
}

}  // namespace

void MicroVm::park() {
  std::unique_lock l(pause_mu_);
  ++parked_;
  pause_cv_.notify_all();
  pause_cv_.wait(l, [this] { return !pausing_.load() || stop_.requested(); });
  --parked_;
}

Status MicroVm::pause() {
  std::unique_lock l(pause_mu_);
  if (stop_.requested()) return make_error(ErrorCode::kFailedPrecondition, "the VM is stopping");
  if (pausing_) return {};
  pausing_ = true;
  l.unlock();
  kick_vcpus();
  l.lock();
  bool done = pause_cv_.wait_for(l, kPauseTimeout, [this] { return parked_ == vcpus_.size() || stop_.requested(); });
  if (done && !stop_.requested()) return {};
  pausing_ = false;
  pause_cv_.notify_all();
  return make_error(ErrorCode::kFailedPrecondition, stop_.requested() ? "the VM stopped while pausing"
                                                                      : "the vCPUs did not stop within 5 s");
}

Status MicroVm::resume() {
  std::lock_guard l(pause_mu_);
  pausing_ = false;
  pause_cv_.notify_all();
  return {};
}

void MicroVm::start_paused() {
  std::lock_guard l(pause_mu_);
  pausing_ = true;
  for (auto& v : vcpus_) v->run_struct()->immediate_exit = 1;  // the first KVM_RUN returns at once
}

bool MicroVm::paused() const {
  std::lock_guard l(pause_mu_);
  return pausing_ && parked_ == vcpus_.size();
}

Status MicroVm::snapshot(const std::string& state_path, const std::string& mem_path) {
  if (!paused()) return make_error(ErrorCode::kFailedPrecondition, "pause the VM first (PATCH /vm {\"state\": \"Paused\"})");
  snapshot::Writer w;
  w.u32(static_cast<uint32_t>(vcpus_.size()));
  w.u32(static_cast<uint32_t>(mem_->regions().size()));
  for (const auto& r : mem_->regions()) {
    w.u64(r.start.value);
    w.u64(r.size);
  }
  HUSK_TRY(platform_->save_vm(*vm_, w));
  for (const auto& v : vcpus_) HUSK_TRY(platform_->save_vcpu(*kvm_, *v, w));
  devices_.console->save(w);
  HUSK_TRY(virtio_->save(w));  // a device may refuse (virtio-fs in use): before any file is written

  auto state = open_output(state_path);
  if (!state) return state.error();
  auto mem = open_output(mem_path);
  if (!mem) return mem.error();
  // An output handed over may hold an older snapshot: start it empty.
  if (::ftruncate(mem->get(), 0) != 0) return make_error("%s: %s", mem_path.c_str(), std::strerror(errno));
  if (auto s = mem_->save(mem->get()); !s) return make_error("%s: %s", mem_path.c_str(), s.error().message.c_str());
  if (::fsync(mem->get()) != 0) return make_error("syncing %s: %s", mem_path.c_str(), std::strerror(errno));
  return snapshot::write_state_fd(state->get(), w.bytes(), state_path);
}

Result<MicroVm::RestoreHeader> MicroVm::read_restore_header(snapshot::Reader& r, const Platform& platform) {
  RestoreHeader h;
  h.vcpus = r.u32("vCPU count");
  uint32_t n = r.count("RAM region count", 16);
  uint64_t total = 0;
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    RamRegion reg{GuestAddress(r.u64("RAM region start")), r.u64("RAM region size")};
    total += reg.size;
    if (reg.size > kMaxRamBytes || total > kMaxRamBytes) r.fail("RAM size", "is implausibly large");
    h.regions.push_back(reg);
  }
  HUSK_TRY(r.status());
  if (h.vcpus == 0 || h.vcpus > 255) return make_error(ErrorCode::kInvalidArgument, "snapshot state: %u vCPUs", h.vcpus);
  // The layout must be the one this platform gives that much RAM: boot tables and device
  // windows in the snapshot's memory assume it.
  auto expect = platform.ram_regions(total);
  bool same = expect.size() == h.regions.size();
  for (size_t i = 0; same && i < expect.size(); ++i)
    same = expect[i].start == h.regions[i].start && expect[i].size == h.regions[i].size;
  if (!same) return make_error(ErrorCode::kInvalidArgument, "snapshot state: the RAM layout is not this platform's");
  return h;
}

Status MicroVm::restore_state(snapshot::Reader& r) {
  HUSK_TRY(platform_->restore_vm(*vm_, r));
  for (auto& v : vcpus_) HUSK_TRY(platform_->restore_vcpu(*kvm_, *v, r));
  devices_.console->restore(r);
  HUSK_TRY(r.status());
  HUSK_TRY(virtio_->restore(r));
  HUSK_TRY(r.status());
  if (!r.at_end()) return make_error(ErrorCode::kInvalidArgument, "snapshot state: unexpected data after the devices");
  return {};
}

}  // namespace husk
