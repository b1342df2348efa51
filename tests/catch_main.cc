// main() of the unit test binaries: Catch2's run, then finish_run (skip.h).
// meson runs them with `-r diskgate-tap` (tap_reporter.cc): one TAP line per
// case, a SKIP_TEST case as "# SKIP". Run by hand with the console reporter,
// a skipped case makes the binary exit 77 (SKIP) rather than pass.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "skip.h"

int main(int argc, char* argv[]) { return diskgate::testing::finish_run(Catch::Session().run(argc, argv)); }
