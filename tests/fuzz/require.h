// Invariant checks of the fuzz targets: abort, so that libFuzzer keeps the
// input that broke one (assert() would vanish under NDEBUG).
#pragma once

#include <cstdlib>

namespace diskgate::fuzz {
inline void require(bool condition) {
  if (!condition) std::abort();
}
}  // namespace diskgate::fuzz
