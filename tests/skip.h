// A Catch2 test case that cannot run here says so instead of passing:
// SKIP_TEST(reason) WARNs and returns, and the binary's main() then exits
// 77 (meson: SKIP) with a "SKIP: reason" line per skipped case, so a
// partial run never shows as a plain pass.
#pragma once

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace diskgate::testing {

void note_skip(const std::string& reason);
const std::vector<std::string>& skips();
// What main() returns after Catch2's run: `failed` when a case failed,
// else 77 when one was skipped (its reasons printed), else 0.
int finish_run(int failed);

#define SKIP_TEST(reason)                            \
  do {                                               \
    const std::string skip_reason_ = (reason);       \
    WARN("SKIP: " << skip_reason_);                  \
    ::diskgate::testing::note_skip(skip_reason_);    \
    return;                                          \
  } while (0)

}  // namespace diskgate::testing
