// A Catch2 test case that cannot run here says so instead of passing:
// SKIP_TEST(reason) WARNs and returns. Run by meson (`-r diskgate-tap`,
// tap_reporter.cc) the case is then one TAP line "ok N - name # SKIP reason"
// beside its binary's other cases; run by hand (Catch2's console reporter)
// main() prints a "SKIP: reason" line per skipped case and exits 77, so a
// partial run never shows as a plain pass.
#pragma once

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace diskgate::testing {

void note_skip(const std::string& reason);
const std::vector<std::string>& skips();
// Whether the run reports through the diskgate-tap reporter (tap_reporter.cc).
bool tap_reporter_active();
// What main() returns after Catch2's run. With the TAP reporter: 0, the
// results (failures included) are in the TAP stream. Otherwise `failed` when
// a case failed, else 77 when one was skipped (its reasons printed), else 0.
int finish_run(int failed);
// What main() returns when the whole binary cannot run here (before Catch2
// runs): a TAP "1..0 # SKIP reason" and 0 when argv asks for the TAP
// reporter, else "SKIP: reason" and 77.
int skip_binary(int argc, char* argv[], const std::string& reason);

// Whether the binaries run under ASan/UBSan (tests/run-sanitizers.sh sets
// DISKGATE_SANITIZED=1): a case the sanitizer runtimes cannot run under
// skips with its reason.
bool sanitized_run();

#define SKIP_TEST(reason)                            \
  do {                                               \
    const std::string skip_reason_ = (reason);       \
    WARN("SKIP: " << skip_reason_);                  \
    ::diskgate::testing::note_skip(skip_reason_);    \
    return;                                          \
  } while (0)

}  // namespace diskgate::testing
