// The supervisor's pure parts: the program record (read back after a crash,
// so treated as hostile) and its path, and the backoff. Its behaviour with
// programs is tested through the gate (gate_test.cc) on the fake platform
// and for real in gate_e2e_test.sh and fault_test.sh.
#include "gate/supervisor.h"

#include <catch2/catch.hpp>

namespace diskgate::gate {
namespace {

using namespace std::chrono_literals;

TEST_CASE("program record: what is written reads back") {
  os::ProcessInfo process{4321, 987654321};
  auto text = format_program_record(process);
  CHECK(text == "pid=4321\nstart_time=987654321\n");
  CHECK(parse_program_record(text) == process);
}

TEST_CASE("program record: anything else is no record") {
  using namespace std::string_view_literals;
  for (std::string_view text : std::vector<std::string_view>{
           "",
           "pid=4321\n",                                // no start time
           "start_time=5\n",                            // no pid
           "pid=4321\nstart_time=5",                    // last line cut short
           "pid=4321\nstart_time=5\nextra=1\n",         // unknown key
           "pid=4321\npid=4322\nstart_time=5\n",        // twice
           "pid=-4\nstart_time=5\n",                    // sign
           "pid=0\nstart_time=5\n", "pid=1\nstart_time=5\n",  // never a program of ours
           "pid=99999999\nstart_time=5\n",              // beyond pid_max
           "pid=4321\nstart_time=99999999999999999999999\n",  // overflow
           "pid= 4321\nstart_time=5\n", "pid=4321 \nstart_time=5\n", "pid4321\nstart_time=5\n",
           "pid=43\0" "21\nstart_time=5\n"sv,
       }) {
    INFO(std::string(text));
    CHECK_FALSE(parse_program_record(text));
  }
}

TEST_CASE("program record path: one file per target, escaped as systemd does") {
  CHECK(program_record_path("/run/diskgate", "/srv/backup") == "/run/diskgate/srv-backup.program");
  CHECK(program_record_path("/run/diskgate", "/mnt/usb-disk") == "/run/diskgate/mnt-usb\\x2ddisk.program");
  CHECK(program_record_path("/run/diskgate", "/a//b/") == "/run/diskgate/a-b.program");
  CHECK(program_record_path("/run/diskgate", "/a\\b") == "/run/diskgate/a\\x5cb.program");
  // "/a-b" and "/a/b" must not share a record.
  CHECK(program_record_path("/r", "/a-b") != program_record_path("/r", "/a/b"));
}

TEST_CASE("backoff: 1 s doubling to 60 s, and reset") {
  Backoff backoff;
  std::vector<Loop::Clock::duration> delays;
  for (int i = 0; i < 8; ++i) delays.push_back(backoff.next());
  CHECK(delays == std::vector<Loop::Clock::duration>{1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s});
  backoff.reset();
  CHECK(backoff.next() == 1s);
}

}  // namespace
}  // namespace diskgate::gate
