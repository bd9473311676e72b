// KVM ioctls with flexible array members take a header followed by entries. linux-libc-dev's
// __DECLARE_FLEX_ARRAY puts an empty struct before the array, which is zero-sized in C but one
// byte in C++: both sizeof (baked into the ioctl numbers) and the array offset come out wrong.
// So husk spells out the C layout of these headers and the ioctl numbers derived from it (the
// KVM layer issues them, the seccomp lists allow them).
#pragma once

#include <linux/kvm.h>

#include <cstdint>

namespace husk::kvm {

struct CpuidHeader {
  uint32_t nent, padding;
};
struct MsrsHeader {
  uint32_t nmsrs, pad;
};
struct MsrListHeader {
  uint32_t nmsrs;
};
// struct kvm_xsave's C size (its trailing flexible array adds nothing in C).
struct XsaveHeader {
  uint32_t region[1024];
};
constexpr size_t kXsaveBytes = sizeof(XsaveHeader);
constexpr unsigned long kGetXsave = _IOR(KVMIO, 0xa4, XsaveHeader);
constexpr unsigned long kSetXsave = _IOW(KVMIO, 0xa5, XsaveHeader);
constexpr unsigned long kGetXsave2 = _IOR(KVMIO, 0xcf, XsaveHeader);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);

}  // namespace husk::kvm
