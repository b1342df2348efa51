// main() of the unit test binaries: Catch2's run, then a skipped case
// (SKIP_TEST, skip.h) makes the binary SKIP rather than pass.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "skip.h"

int main(int argc, char* argv[]) { return diskgate::testing::finish_run(Catch::Session().run(argc, argv)); }
