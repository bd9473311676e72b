// Descriptors a process is started with (by the shim, through husk-jailer): a jailed helper is
// handed its sockets and files open rather than given paths, so it needs no path into the host
// and the host never follows a path the helper could have replaced.
#pragma once

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace husk {

// "fd=N": true with *n set; anything else: false (the text is a path).
bool is_fd_spec(const std::string& text, int* n);

// Takes ownership of inherited descriptor `n` (>= 3, open), marking it close-on-exec.
Result<UniqueFd> take_inherited_fd(int n);

}  // namespace husk
