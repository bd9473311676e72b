// husk's one error type and an expected-like result. Every component returns errors as values
// (no exceptions on paths a guest, a file or a client controls); the edges map the code to what
// they speak (gRPC status in the agent, ttrpc status in the shim, an exit status in husk-vmm),
// each in one place.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>
#include <utility>
#include <variant>

namespace husk {

// The canonical status codes gRPC and ttrpc share (same numbers), so mapping is a cast.
enum class ErrorCode : int {
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
};

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::kInternal;

  Error() = default;
  Error(std::string m, ErrorCode c = ErrorCode::kInternal) : message(std::move(m)), code(c) {}  // NOLINT
  // The same error with context in front ("kernel x: " + message), code kept.
  Error wrap(const std::string& context) const { return Error{context + message, code}; }
};

namespace detail {
inline std::string vformat(const char* fmt, va_list ap) {
  char buf[512];
  va_list copy;
  va_copy(copy, ap);
  int n = std::vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n < 0) return fmt;
  if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
  std::string s(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(s.data(), s.size(), fmt, ap);
  s.resize(static_cast<size_t>(n));
  return s;
}
}  // namespace detail

// printf-style constructors, so call sites stay one line. Without a code: kInternal.
[[gnu::format(printf, 1, 2)]] inline Error make_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  Error e{detail::vformat(fmt, ap)};
  va_end(ap);
  return e;
}
[[gnu::format(printf, 2, 3)]] inline Error make_error(ErrorCode code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  Error e{detail::vformat(fmt, ap), code};
  va_end(ap);
  return e;
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit on purpose, like expected
  Result(Error e) : v_(std::move(e)) {}      // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : err_(std::move(e)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace husk

// Returns the error of a Status/Result expression from the enclosing function.
#define HUSK_TRY(expr)                             \
  do {                                             \
    if (auto husk_try_ = (expr); !husk_try_)       \
      return husk_try_.error();                    \
  } while (0)
