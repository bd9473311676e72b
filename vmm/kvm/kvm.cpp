#include "vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vmm/kvm/flex_ioctls.h"

namespace husk::kvm {
namespace {

Error fail(const char* what) {
  int e = errno;
  return make_error(ErrorCode::kInternal, "%s: %s", what, std::strerror(e));
}

Status check(int r, const char* what) {
  if (r < 0) return fail(what);
  return {};
}

template <class... A>
int xioctl(int fd, unsigned long req, A... args) {
  int r;
  do r = ::ioctl(fd, req, args...);
  while (r < 0 && errno == EINTR);
  return r;
}

template <class Header, class Entry>
struct FlexBuffer {
  explicit FlexBuffer(size_t n) : storage((sizeof(Header) + n * sizeof(Entry) + 7) / 8) {}
  Header* header() { return reinterpret_cast<Header*>(storage.data()); }
  Entry* entries() { return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage.data()) + sizeof(Header)); }
  std::vector<uint64_t> storage;  // zeroed: KVM rejects non-zero padding in CPUID entries
};

// Queries a variable-length list, growing the buffer while KVM answers E2BIG. Both list headers
// start with their entry count, which KVM overwrites with the real count.
template <class Header, class Entry>
Result<std::vector<Entry>> get_list(int fd, unsigned long req, const char* what) {
  for (size_t n = 128; n <= 16384; n *= 2) {
    FlexBuffer<Header, Entry> buf(n);
    auto* count = reinterpret_cast<uint32_t*>(buf.header());
    *count = static_cast<uint32_t>(n);
    if (xioctl(fd, req, buf.header()) == 0) return std::vector<Entry>(buf.entries(), buf.entries() + *count);
    if (errno != E2BIG) return fail(what);
  }
  return make_error("%s: too many entries", what);
}

}  // namespace

Result<Kvm> Kvm::open(const char* path) {
  Kvm k;
  k.fd_.reset(::open(path, O_RDWR | O_CLOEXEC));
  if (!k.fd_) {
    int e = errno;
    if (e == ENOENT)
      return make_error(ErrorCode::kUnavailable,
                        "cannot open %s: no such device: this host has no KVM (no kvm module, or "
                        "no virtualization). Boot guests inside the husk test host instead: "
                        "tests/testhost/run.sh (see README)",
                        path);
    return make_error(ErrorCode::kUnavailable, "cannot open %s: %s (is KVM available and are you allowed to use it?)",
                      path, std::strerror(e));
  }
  int v = xioctl(k.fd(), KVM_GET_API_VERSION, 0);
  if (v != KVM_API_VERSION) return make_error("%s: unsupported KVM API version %d", path, v);
  return k;
}

int Kvm::check_extension(long cap) const { return xioctl(fd(), KVM_CHECK_EXTENSION, cap); }

Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
  return get_list<CpuidHeader, kvm_cpuid_entry2>(fd(), kGetSupportedCpuid, "KVM_GET_SUPPORTED_CPUID");
}

Result<std::vector<uint32_t>> Kvm::msr_index_list() const {
  return get_list<MsrListHeader, uint32_t>(fd(), kGetMsrIndexList, "KVM_GET_MSR_INDEX_LIST");
}

Result<size_t> Kvm::vcpu_mmap_size() const {
  int n = xioctl(fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (n <= 0) return fail("KVM_GET_VCPU_MMAP_SIZE");
  return static_cast<size_t>(n);
}

size_t Kvm::xsave_size() const {
  int n = check_extension(KVM_CAP_XSAVE2);
  return n > static_cast<int>(kXsaveBytes) ? static_cast<size_t>(n) : kXsaveBytes;
}

Result<Vm> Vm::create(const Kvm& kvm) {
  Vm vm;
  vm.fd_.reset(xioctl(kvm.fd(), KVM_CREATE_VM, 0));
  if (!vm.fd_) return fail("KVM_CREATE_VM");
  return vm;
}

Status Vm::set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) {
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = gpa;
  r.memory_size = size;
  r.userspace_addr = reinterpret_cast<uint64_t>(host);
  return check(xioctl(fd(), KVM_SET_USER_MEMORY_REGION, &r), "KVM_SET_USER_MEMORY_REGION");
}

Status Vm::create_irqchip() { return check(xioctl(fd(), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP"); }

Status Vm::create_pit2() {
  kvm_pit_config c{};
  c.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 handled in the kernel, no exits for it
  return check(xioctl(fd(), KVM_CREATE_PIT2, &c), "KVM_CREATE_PIT2");
}

Status Vm::set_tss_addr(uint64_t addr) {
  return check(xioctl(fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)), "KVM_SET_TSS_ADDR");
}

Status Vm::set_identity_map_addr(uint64_t addr) {
  uint64_t a = addr;
  return check(xioctl(fd(), KVM_SET_IDENTITY_MAP_ADDR, &a), "KVM_SET_IDENTITY_MAP_ADDR");
}

Status Vm::register_irqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd f{};
  f.fd = static_cast<uint32_t>(eventfd);
  f.gsi = gsi;
  return check(xioctl(fd(), KVM_IRQFD, &f), "KVM_IRQFD");
}

Status Vm::register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, uint64_t datamatch) {
  kvm_ioeventfd e{};
  e.datamatch = datamatch;
  e.addr = addr;
  e.len = len;
  e.fd = eventfd;
  e.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
  return check(xioctl(fd(), KVM_IOEVENTFD, &e), "KVM_IOEVENTFD");
}

Result<kvm_irqchip> Vm::get_irqchip(uint32_t chip) const {
  kvm_irqchip c{};
  c.chip_id = chip;
  if (xioctl(fd_.get(), KVM_GET_IRQCHIP, &c) < 0) return fail("KVM_GET_IRQCHIP");
  return c;
}
Status Vm::set_irqchip(const kvm_irqchip& c) { return check(xioctl(fd_.get(), KVM_SET_IRQCHIP, &c), "KVM_SET_IRQCHIP"); }
Result<kvm_pit_state2> Vm::get_pit2() const {
  kvm_pit_state2 p{};
  if (xioctl(fd_.get(), KVM_GET_PIT2, &p) < 0) return fail("KVM_GET_PIT2");
  return p;
}
Status Vm::set_pit2(const kvm_pit_state2& p) { return check(xioctl(fd_.get(), KVM_SET_PIT2, &p), "KVM_SET_PIT2"); }
Result<kvm_clock_data> Vm::get_clock() const {
  kvm_clock_data c{};
  if (xioctl(fd_.get(), KVM_GET_CLOCK, &c) < 0) return fail("KVM_GET_CLOCK");
  return c;
}
Status Vm::set_clock(const kvm_clock_data& c) {
  // Only the clock value: the flags and realtime fields KVM_GET_CLOCK filled in describe the
  // host that wrote the snapshot, and KVM_SET_CLOCK would reinterpret them here.
  kvm_clock_data d{};
  d.clock = c.clock;
  return check(xioctl(fd_.get(), KVM_SET_CLOCK, &d), "KVM_SET_CLOCK");
}

Result<std::unique_ptr<Vcpu>> Vcpu::create(const Vm& vm, unsigned id, size_t mmap_size) {
  UniqueFd fd(xioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
  if (!fd) return fail("KVM_CREATE_VCPU");
  void* p = ::mmap(nullptr, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return fail("mmap of kvm_run");
  return std::unique_ptr<Vcpu>(new Vcpu(std::move(fd), Mapping(p, mmap_size), id));  // NOLINT: private ctor
}

Result<kvm_regs> Vcpu::get_regs() const {
  kvm_regs r{};
  if (xioctl(fd_.get(), KVM_GET_REGS, &r) < 0) return fail("KVM_GET_REGS");
  return r;
}
Status Vcpu::set_regs(const kvm_regs& r) { return check(xioctl(fd_.get(), KVM_SET_REGS, &r), "KVM_SET_REGS"); }
Result<kvm_sregs> Vcpu::get_sregs() const {
  kvm_sregs s{};
  if (xioctl(fd_.get(), KVM_GET_SREGS, &s) < 0) return fail("KVM_GET_SREGS");
  return s;
}
Status Vcpu::set_sregs(const kvm_sregs& s) { return check(xioctl(fd_.get(), KVM_SET_SREGS, &s), "KVM_SET_SREGS"); }
Status Vcpu::set_fpu(const kvm_fpu& f) { return check(xioctl(fd_.get(), KVM_SET_FPU, &f), "KVM_SET_FPU"); }

Status Vcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  FlexBuffer<CpuidHeader, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  return check(xioctl(fd_.get(), kSetCpuid2, buf.header()), "KVM_SET_CPUID2");
}

Result<int> Vcpu::set_msrs(const std::vector<kvm_msr_entry>& msrs) {
  FlexBuffer<MsrsHeader, kvm_msr_entry> buf(msrs.size());
  buf.header()->nmsrs = static_cast<uint32_t>(msrs.size());
  std::memcpy(buf.entries(), msrs.data(), msrs.size() * sizeof(kvm_msr_entry));
  int n = xioctl(fd_.get(), kSetMsrs, buf.header());
  if (n < 0) return fail("KVM_SET_MSRS");
  return n;
}

Result<kvm_lapic_state> Vcpu::get_lapic() const {
  kvm_lapic_state l{};
  if (xioctl(fd_.get(), KVM_GET_LAPIC, &l) < 0) return fail("KVM_GET_LAPIC");
  return l;
}
Status Vcpu::set_lapic(const kvm_lapic_state& l) { return check(xioctl(fd_.get(), KVM_SET_LAPIC, &l), "KVM_SET_LAPIC"); }

Result<kvm_fpu> Vcpu::get_fpu() const {
  kvm_fpu f{};
  if (xioctl(fd_.get(), KVM_GET_FPU, &f) < 0) return fail("KVM_GET_FPU");
  return f;
}

Result<std::vector<uint8_t>> Vcpu::get_xsave(size_t xsave_bytes) const {
  std::vector<uint8_t> buf(std::max(xsave_bytes, kXsaveBytes));
  unsigned long req = buf.size() > kXsaveBytes ? kGetXsave2 : kGetXsave;
  if (xioctl(fd_.get(), req, buf.data()) < 0) return fail("KVM_GET_XSAVE");
  return buf;
}
Status Vcpu::set_xsave(const std::vector<uint8_t>& xsave) {
  if (xsave.size() < kXsaveBytes) return make_error("KVM_SET_XSAVE: %zu bytes of XSAVE state", xsave.size());
  return check(xioctl(fd_.get(), kSetXsave, xsave.data()), "KVM_SET_XSAVE");
}
Result<kvm_xcrs> Vcpu::get_xcrs() const {
  kvm_xcrs x{};
  if (xioctl(fd_.get(), KVM_GET_XCRS, &x) < 0) return fail("KVM_GET_XCRS");
  return x;
}
Status Vcpu::set_xcrs(const kvm_xcrs& x) { return check(xioctl(fd_.get(), KVM_SET_XCRS, &x), "KVM_SET_XCRS"); }

Result<int> Vcpu::get_msrs(std::vector<kvm_msr_entry>& msrs) const {
  FlexBuffer<MsrsHeader, kvm_msr_entry> buf(msrs.size());
  buf.header()->nmsrs = static_cast<uint32_t>(msrs.size());
  std::memcpy(buf.entries(), msrs.data(), msrs.size() * sizeof(kvm_msr_entry));
  int n = xioctl(fd_.get(), kGetMsrs, buf.header());
  if (n < 0) return fail("KVM_GET_MSRS");
  std::memcpy(msrs.data(), buf.entries(), msrs.size() * sizeof(kvm_msr_entry));
  return n;
}

Result<kvm_vcpu_events> Vcpu::get_vcpu_events() const {
  kvm_vcpu_events e{};
  if (xioctl(fd_.get(), KVM_GET_VCPU_EVENTS, &e) < 0) return fail("KVM_GET_VCPU_EVENTS");
  return e;
}
Status Vcpu::set_vcpu_events(const kvm_vcpu_events& e) {
  return check(xioctl(fd_.get(), KVM_SET_VCPU_EVENTS, &e), "KVM_SET_VCPU_EVENTS");
}
Result<kvm_mp_state> Vcpu::get_mp_state() const {
  kvm_mp_state m{};
  if (xioctl(fd_.get(), KVM_GET_MP_STATE, &m) < 0) return fail("KVM_GET_MP_STATE");
  return m;
}
Status Vcpu::set_mp_state(const kvm_mp_state& m) { return check(xioctl(fd_.get(), KVM_SET_MP_STATE, &m), "KVM_SET_MP_STATE"); }
Result<kvm_debugregs> Vcpu::get_debugregs() const {
  kvm_debugregs d{};
  if (xioctl(fd_.get(), KVM_GET_DEBUGREGS, &d) < 0) return fail("KVM_GET_DEBUGREGS");
  return d;
}
Status Vcpu::set_debugregs(const kvm_debugregs& d) {
  return check(xioctl(fd_.get(), KVM_SET_DEBUGREGS, &d), "KVM_SET_DEBUGREGS");
}

uint32_t Vcpu::tsc_khz() const {
  int r = xioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  return r > 0 ? static_cast<uint32_t>(r) : 0;
}

int Vcpu::run() {
  // Not retried on EINTR: a signal is how another thread asks this vCPU to stop.
  return ::ioctl(fd_.get(), KVM_RUN, 0) < 0 ? -errno : 0;
}

}  // namespace husk::kvm
