// Shared by the shim's translation units: every entry point returns 0 on success, or 1 with an
// owned copy of the C++ exception's message in *err (freed by pulse_free_error).
#pragma once
#include <cstdlib>
#include <cstring>
#include <exception>

namespace pulse_shim {
inline char* copy_message(const char* what) {
  size_t n = std::strlen(what);
  char* out = static_cast<char*>(std::malloc(n + 1));
  if (out) std::memcpy(out, what, n + 1);
  return out;
}
}  // namespace pulse_shim

#define PULSE_PROTECT(...)                               \
  try {                                                  \
    __VA_ARGS__;                                         \
    return 0;                                            \
  } catch (const std::exception& e) {                    \
    *err = pulse_shim::copy_message(e.what());           \
    return 1;                                            \
  } catch (...) {                                        \
    *err = pulse_shim::copy_message("unknown C++ error"); \
    return 1;                                            \
  }
