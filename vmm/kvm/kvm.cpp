#include "vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <linux/kvm.h>

namespace husk::kvm {
namespace {

[[noreturn]] void fail(const char* what) {
  int e = errno;
  throw KvmError(std::string(what) + ": " + std::strerror(e), e);
}

template <class... A>
int xioctl(int fd, unsigned long req, A... args) {
  int r;
  do r = ::ioctl(fd, req, args...);
  while (r < 0 && errno == EINTR);
  return r;
}

// KVM ioctls with flexible array members take a header followed by entries. linux-libc-dev's
// __DECLARE_FLEX_ARRAY puts an empty struct before the array, which is zero-sized in C but one
// byte in C++: both sizeof (baked into the ioctl numbers) and the array offset come out wrong.
// So husk spells out the C layout of these headers and the ioctl numbers derived from it.
struct CpuidHeader {
  uint32_t nent, padding;
};
struct MsrsHeader {
  uint32_t nmsrs, pad;
};
struct MsrListHeader {
  uint32_t nmsrs;
};
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);

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
std::vector<Entry> get_list(int fd, unsigned long req, const char* what) {
  for (size_t n = 128; n <= 16384; n *= 2) {
    FlexBuffer<Header, Entry> buf(n);
    auto* count = reinterpret_cast<uint32_t*>(buf.header());
    *count = static_cast<uint32_t>(n);
    if (xioctl(fd, req, buf.header()) == 0) return {buf.entries(), buf.entries() + *count};
    if (errno != E2BIG) fail(what);
  }
  throw KvmError(std::string(what) + ": too many entries", E2BIG);
}

}  // namespace

KvmError::KvmError(const std::string& what, int err) : std::runtime_error(what), err_(err) {}

bool is_pvm() {
  struct stat st;
  return ::stat("/sys/module/kvm_pvm", &st) == 0;
}

Kvm Kvm::open(const char* path) {
  Kvm k;
  k.fd_.reset(::open(path, O_RDWR | O_CLOEXEC));
  if (!k.fd_) fail("cannot open /dev/kvm (is KVM available and are you allowed to use it?)");
  int v = xioctl(k.fd(), KVM_GET_API_VERSION, 0);
  if (v != KVM_API_VERSION) throw KvmError("unsupported KVM API version " + std::to_string(v), 0);
  return k;
}

int Kvm::check_extension(long cap) const { return xioctl(fd(), KVM_CHECK_EXTENSION, cap); }

std::vector<kvm_cpuid_entry2> Kvm::supported_cpuid() const {
  return get_list<CpuidHeader, kvm_cpuid_entry2>(fd(), kGetSupportedCpuid, "KVM_GET_SUPPORTED_CPUID");
}

std::vector<uint32_t> Kvm::msr_index_list() const {
  return get_list<MsrListHeader, uint32_t>(fd(), kGetMsrIndexList, "KVM_GET_MSR_INDEX_LIST");
}

size_t Kvm::vcpu_mmap_size() const {
  int n = xioctl(fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (n <= 0) fail("KVM_GET_VCPU_MMAP_SIZE");
  return static_cast<size_t>(n);
}

Vm::Vm(const Kvm& kvm) {
  fd_.reset(xioctl(kvm.fd(), KVM_CREATE_VM, 0));
  if (!fd_) fail("KVM_CREATE_VM");
}

void Vm::set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size, void* host) {
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = gpa;
  r.memory_size = size;
  r.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (xioctl(fd(), KVM_SET_USER_MEMORY_REGION, &r) < 0) fail("KVM_SET_USER_MEMORY_REGION");
}

void Vm::create_irqchip() {
  if (xioctl(fd(), KVM_CREATE_IRQCHIP, 0) < 0) fail("KVM_CREATE_IRQCHIP");
}

void Vm::create_pit2() {
  kvm_pit_config c{};
  c.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 handled in the kernel, no exits for it
  if (xioctl(fd(), KVM_CREATE_PIT2, &c) < 0) fail("KVM_CREATE_PIT2");
}

void Vm::set_tss_addr(uint64_t addr) {
  if (xioctl(fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) fail("KVM_SET_TSS_ADDR");
}

void Vm::set_identity_map_addr(uint64_t addr) {
  uint64_t a = addr;
  if (xioctl(fd(), KVM_SET_IDENTITY_MAP_ADDR, &a) < 0) fail("KVM_SET_IDENTITY_MAP_ADDR");
}

void Vm::register_irqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd f{};
  f.fd = static_cast<uint32_t>(eventfd);
  f.gsi = gsi;
  if (xioctl(fd(), KVM_IRQFD, &f) < 0) fail("KVM_IRQFD");
}

void Vm::register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, uint64_t datamatch) {
  kvm_ioeventfd e{};
  e.datamatch = datamatch;
  e.addr = addr;
  e.len = len;
  e.fd = eventfd;
  e.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
  if (xioctl(fd(), KVM_IOEVENTFD, &e) < 0) fail("KVM_IOEVENTFD");
}

Vcpu::Vcpu(const Vm& vm, unsigned id, size_t mmap_size) : id_(id) {
  fd_.reset(xioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
  if (!fd_) fail("KVM_CREATE_VCPU");
  void* p = ::mmap(nullptr, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (p == MAP_FAILED) fail("mmap of kvm_run");
  run_ = Mapping(p, mmap_size);
}

kvm_regs Vcpu::get_regs() const {
  kvm_regs r{};
  if (xioctl(fd_.get(), KVM_GET_REGS, &r) < 0) fail("KVM_GET_REGS");
  return r;
}
void Vcpu::set_regs(const kvm_regs& r) {
  if (xioctl(fd_.get(), KVM_SET_REGS, &r) < 0) fail("KVM_SET_REGS");
}
kvm_sregs Vcpu::get_sregs() const {
  kvm_sregs s{};
  if (xioctl(fd_.get(), KVM_GET_SREGS, &s) < 0) fail("KVM_GET_SREGS");
  return s;
}
void Vcpu::set_sregs(const kvm_sregs& s) {
  if (xioctl(fd_.get(), KVM_SET_SREGS, &s) < 0) fail("KVM_SET_SREGS");
}
void Vcpu::set_fpu(const kvm_fpu& f) {
  if (xioctl(fd_.get(), KVM_SET_FPU, &f) < 0) fail("KVM_SET_FPU");
}

void Vcpu::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  FlexBuffer<CpuidHeader, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  if (xioctl(fd_.get(), kSetCpuid2, buf.header()) < 0) fail("KVM_SET_CPUID2");
}

int Vcpu::set_msrs(const std::vector<kvm_msr_entry>& msrs) {
  FlexBuffer<MsrsHeader, kvm_msr_entry> buf(msrs.size());
  buf.header()->nmsrs = static_cast<uint32_t>(msrs.size());
  std::memcpy(buf.entries(), msrs.data(), msrs.size() * sizeof(kvm_msr_entry));
  int n = xioctl(fd_.get(), kSetMsrs, buf.header());
  if (n < 0) fail("KVM_SET_MSRS");
  return n;
}

kvm_lapic_state Vcpu::get_lapic() const {
  kvm_lapic_state l{};
  if (xioctl(fd_.get(), KVM_GET_LAPIC, &l) < 0) fail("KVM_GET_LAPIC");
  return l;
}
void Vcpu::set_lapic(const kvm_lapic_state& l) {
  if (xioctl(fd_.get(), KVM_SET_LAPIC, &l) < 0) fail("KVM_SET_LAPIC");
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
