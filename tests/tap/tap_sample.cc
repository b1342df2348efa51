// Cases for tap_reporter_test.sh: one passes, one skips, one fails, one
// throws. All hidden ([.]), so only the script, which names them, runs them.
#include <stdexcept>

#include "skip.h"

TEST_CASE("sample passes", "[.][sample]") { CHECK(1 + 1 == 2); }

TEST_CASE("sample skips #1", "[.][sample]") {
  CHECK(true);
  SKIP_TEST("no such device\nhere");
}

TEST_CASE("sample fails", "[.][sample]") {
  int answer = 41;
  INFO("the answer was computed");
  CHECK(answer == 42);
  REQUIRE(answer + 1 == 42);
}

TEST_CASE("sample throws", "[.][sample]") { throw std::runtime_error("disk on fire"); }
