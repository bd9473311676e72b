// Whole-buffer positional file I/O on a held descriptor: short transfers and EINTR are retried,
// so callers see all of it or an error.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/result.h"

namespace husk {

// Reads exactly `n` bytes at `offset`; end of file first is an error ("file too short").
Status pread_full(int fd, void* buf, size_t n, uint64_t offset);
Status pwrite_full(int fd, const void* buf, size_t n, uint64_t offset);

}  // namespace husk
