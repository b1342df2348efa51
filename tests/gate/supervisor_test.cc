// The supervisor: its pure parts (the program record, read back after a
// crash and so treated as hostile; its path; the backoff) and its
// behaviour on the fake platform and manual loop. The gate's tests drive it
// through the state machine; gate_e2e_test.sh and fault_test.sh for real.
#include "gate/supervisor.h"

#include <signal.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "gate/fakes.h"

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

// ---- On the fake platform ----

struct Supervised {
  fakes::FakePlatform platform;
  fakes::ManualLoop loop;
  std::optional<Supervisor> supervisor;
  std::vector<os::ExitStatus> exits;
  int unkillable = 0;
  Supervised() {
    supervisor.emplace(Supervisor::Settings{{"rest-server"}, std::nullopt, 2000ms, "/run/dg/x.program"}, platform,
                       loop);
    supervisor->on_exit([this](const os::ExitStatus& exit) { exits.push_back(exit); });
    supervisor->on_unkillable([this] { ++unkillable; });
  }
  void end(os::ExitStatus status) {
    int fd = platform.pidfd_of(platform.last_pid());
    platform.end(platform.last_pid(), status);
    REQUIRE(loop.fire(fd));
  }
};

TEST_CASE("supervisor: a program that exits on its own is reported, its record removed") {
  Supervised s;
  s.supervisor->start();
  CHECK(s.supervisor->running());
  CHECK(s.platform.files.contains("/run/dg/x.program"));
  s.end({false, 3});
  CHECK(s.exits == std::vector<os::ExitStatus>{{false, 3}});
  CHECK_FALSE(s.supervisor->running());
  CHECK(s.supervisor->last_exit() == os::ExitStatus{false, 3});
  CHECK_FALSE(s.platform.files.contains("/run/dg/x.program"));
}

TEST_CASE("supervisor: stop sends SIGTERM, SIGKILL after the timeout, and says when even that did not work") {
  Supervised s;
  s.supervisor->start();
  pid_t pid = s.supervisor->pid();
  int stopped = 0;
  s.supervisor->stop([&] { ++stopped; });
  CHECK(s.platform.calls.back() == fmt::format("signal {} SIGTERM", pid));
  s.loop.advance(2000ms);
  CHECK(s.platform.calls.back() == fmt::format("signal {} SIGKILL", pid));
  CHECK(s.unkillable == 0);
  s.loop.advance(2000ms);
  CHECK(s.unkillable == 1);
  CHECK(stopped == 0);
  s.end({true, SIGKILL});
  CHECK(stopped == 1);
  CHECK(s.exits.empty());  // a stop's end is not an exit of its own
}

TEST_CASE("supervisor: restarts wait 1, 2, 4 s; a run of 60 s resets the backoff") {
  Supervised s;
  int starts = 0;
  auto again = [&] {
    ++starts;
    s.supervisor->start();
  };
  s.supervisor->start();
  for (auto delay : {1s, 2s, 4s}) {
    s.end({false, 1});
    s.supervisor->restart_later(again);
    CHECK(s.loop.next_timer() == Loop::Clock::duration(delay));
    s.loop.advance(delay);
  }
  CHECK(starts == 3);
  s.loop.advance(60s);
  s.end({false, 1});
  s.supervisor->restart_later(again);
  CHECK(s.loop.next_timer() == Loop::Clock::duration(1s));
}

TEST_CASE("supervisor: destroyed with the program running, it SIGKILLs the group and stops watching") {
  Supervised s;
  s.supervisor->start();
  pid_t pid = s.supervisor->pid();
  s.platform.calls.clear();
  s.supervisor.reset();
  CHECK(s.platform.calls == std::vector<std::string>{fmt::format("signal {} SIGKILL", pid)});
  CHECK(s.loop.watch_count() == 0);
}

}  // namespace
}  // namespace diskgate::gate
