#include <catch2/catch.hpp>

#include "os/proc_stat.h"

namespace diskgate::os {
namespace {

// Fields 3 to 22 after the comm, as Linux 6.18 printed them for a sleep
// (starttime 123456), followed by the rest of the line.
constexpr const char* tail =
    "S 1000 1001 1000 34816 1001 4194304 101 0 0 0 0 0 0 0 20 0 1 0 123456 "
    "8757248 256 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

StatFields expected(std::string comm) {
  StatFields f;
  f.pid = 1002;
  f.comm = std::move(comm);
  f.state = 'S';
  f.ppid = 1000;
  f.pgrp = 1001;
  f.start_time = 123456;
  return f;
}

TEST_CASE("a plain line gives pid, comm, state, ppid, pgrp and start time") {
  auto f = parse_proc_stat(std::string("1002 (sleep) ") + tail);
  REQUIRE(f);
  CHECK(*f == expected("sleep"));
}

TEST_CASE("a comm with spaces and parentheses ends at the last ')'") {
  for (std::string comm : {"a b", ") (", "x) S 1 2 3", "((", "))", "", "new\nline"}) {
    INFO(comm);
    auto f = parse_proc_stat("1002 (" + comm + ") " + tail);
    REQUIRE(f);
    CHECK(*f == expected(comm));
  }
}

TEST_CASE("a kernel thread: ppid and pgrp 0, state I") {
  auto f = parse_proc_stat(
      "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0 18446744073709551615 0 0 0 0 0 0 0 "
      "2147483647 0 0 0 0 17 0 0 0 0 0 0");
  REQUIRE(f);
  CHECK(f->pid == 2);
  CHECK(f->ppid == 0);
  CHECK(f->pgrp == 0);
  CHECK(f->start_time == 3);
}

TEST_CASE("start time up to 2^64-1; negative fields before it do not matter") {
  std::string line =
      "7 (x) R 1 7 7 0 -1 0 0 0 0 0 0 0 -5 -9 -2 -20 1 0 18446744073709551615 0";
  auto f = parse_proc_stat(line);
  REQUIRE(f);
  CHECK(f->start_time == 18446744073709551615u);
  CHECK(f->state == 'R');
}

TEST_CASE("hostile and truncated lines give nullopt") {
  const std::string good = std::string("1002 (sleep) ") + tail;
  // Every truncation before field 22 ends is rejected; cutting inside field
  // 22 leaves a shorter number, which cannot be told apart: cut before it.
  const auto field22 = good.find("123456");
  for (std::size_t n = 0; n < field22; ++n) {
    INFO(n);
    CHECK_FALSE(parse_proc_stat(good.substr(0, n)));
  }
  CHECK(parse_proc_stat(good.substr(0, field22 + 6)));  // ends right after field 22

  for (const char* line : {
           "",
           ")",
           "(",
           "1002 sleep S 1000 1001",                              // no parentheses
           "1002 (sleep S 1000 1001 1000 34816",                  // no ')'
           "1002 (sleep)S 1000 1001 1000 0 1 0 0 0 0 0 0 0 0 0 0 20 0 1 0 5",  // no space after ')'
           "abc (x) S 1 1 1 0 1 0 0 0 0 0 0 0 0 0 0 20 0 1 0 5",  // pid not a number
           "-5 (x) S 1 1 1 0 1 0 0 0 0 0 0 0 0 0 0 20 0 1 0 5",   // negative pid
           "0 (x) S 1 1 1 0 1 0 0 0 0 0 0 0 0 0 0 20 0 1 0 5",    // pid 0
           "5 (x) SS 1 1 1 0 1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",     // state not one letter
           "5 (x) S 1 -1 1 0 1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",     // negative pgrp
           "5 (x) S 1 99999999999 1 0 1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",  // pgrp beyond pid_t
           "5 (x) S 1 1 1 0 1 0 0 0 0 0 0 0 0 0 20 0 1 0 18446744073709551616",  // start time beyond 2^64
           "5 (x) S 1 1 1 0 1 0 0 0 0 0 0 0 0 0 20 0 1 0 12x",    // garbage in field 22
           "5 (x) S 1 1 1 0 1 0 0 0 0 0 0 0 0 0 20 0 1 0 -3",     // negative start time
           "5 (x) S  1 1 1 0 1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",     // empty field
       }) {
    INFO(line);
    CHECK_FALSE(parse_proc_stat(line));
  }
}

}  // namespace
}  // namespace diskgate::os
