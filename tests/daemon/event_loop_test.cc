#include "daemon/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "dbus/object_path.h"

using diskgate::daemon::EventLoop;
using namespace std::chrono_literals;

TEST_CASE("event loop: timers fire in deadline order; a cancelled one never fires") {
  EventLoop loop;
  std::vector<int> fired;
  loop.add_timer(30ms, [&] {
    fired.push_back(3);
    loop.stop(7);
  });
  auto cancelled = loop.add_timer(5ms, [&] { fired.push_back(99); });
  loop.add_timer(10ms, [&] { fired.push_back(1); });
  loop.add_timer(20ms, [&] { fired.push_back(2); });
  loop.cancel_timer(cancelled);
  CHECK(loop.run() == 7);
  CHECK(fired == std::vector<int>{1, 2, 3});
}

// Several timers due in one round (the loop was busy): they fire by
// deadline, not in the order they were added.
TEST_CASE("event loop: timers due together fire by deadline, ties by the order added") {
  EventLoop loop;
  std::vector<int> fired;
  loop.add_timer(30ms, [&] { fired.push_back(1); });
  loop.add_timer(10ms, [&] { fired.push_back(2); });
  loop.add_timer(20ms, [&] { fired.push_back(3); });
  auto same = EventLoop::Clock::now() + 25ms;
  loop.add_timer(same, [&] { fired.push_back(4); });
  loop.add_timer(same, [&] { fired.push_back(5); });
  // A busy first round (100 ms, far beyond every deadline) makes them all due at once.
  int fd = ::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(fd >= 0);
  loop.watch_readable(fd, [&] {
    loop.unwatch(fd);
    std::this_thread::sleep_for(100ms);
  });
  loop.add_timer(300ms, [&] { loop.stop(0); });
  CHECK(loop.run() == 0);
  CHECK(fired == std::vector<int>{2, 3, 4, 5, 1});
  ::close(fd);
}

// Rounds are counted by a watch on an fd that stays readable.
TEST_CASE("event loop: a timer falling due while others run fires in that round; one added then, in the next") {
  EventLoop loop;
  int fd = ::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(fd >= 0);
  int round = 0;
  loop.watch_readable(fd, [&] { ++round; });
  int slow_round = 0, overtaken_round = 0, added_round = 0, later_round = 0;
  loop.add_timer(0ms, [&] {
    slow_round = round;
    loop.add_timer(0ms, [&] { added_round = round; });
    std::this_thread::sleep_for(100ms);  // meanwhile the next timer falls due
  });
  loop.add_timer(30ms, [&] { overtaken_round = round; });
  loop.add_timer(2s, [&] {  // not due during the busy round: fires much later
    later_round = round;
    loop.stop(0);
  });
  CHECK(loop.run() == 0);
  CHECK(slow_round >= 1);
  CHECK(overtaken_round == slow_round);
  CHECK(added_round == slow_round + 1);
  CHECK(later_round > added_round);
  ::close(fd);
}

TEST_CASE("event loop: a dynamic source that throws in prepare is skipped, and a gone one (fd -1) polls nothing") {
  EventLoop loop;
  int prepared = 0, dispatched = 0;
  loop.watch_dynamic(
      [&]() -> EventLoop::Dynamic {
        if (++prepared == 1) throw std::runtime_error("bus gone");
        return {-1, 0, std::nullopt};
      },
      [&] { ++dispatched; });
  loop.add_timer(5ms, [] {});  // ends the first round: a second one prepares again
  loop.add_timer(50ms, [&] { loop.stop(0); });
  CHECK(loop.run() == 0);
  CHECK(prepared >= 2);
  CHECK(dispatched == prepared - 1);
  loop.unwatch_dynamic();
}

TEST_CASE("event loop: a readable fd runs its callback, which may unwatch itself") {
  EventLoop loop;
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(fd >= 0);
  int calls = 0;
  loop.watch_readable(fd, [&] {
    ++calls;
    std::uint64_t value;
    CHECK(::read(fd, &value, sizeof value) == sizeof value);
    loop.unwatch(fd);
    loop.add_timer(1ms, [&] { loop.stop(0); });
  });
  loop.add_timer(1ms, [&] {
    std::uint64_t one = 1;
    CHECK(::write(fd, &one, sizeof one) == sizeof one);
  });
  loop.add_timer(5s, [&] { loop.stop(1); });  // a bound, not a wait
  CHECK(loop.run() == 0);
  CHECK(calls == 1);
  ::close(fd);
}

TEST_CASE("device object paths escape what an object path element may not hold") {
  using diskgate::dbus::device_object_path;
  CHECK(device_object_path("sda1") == "/org/diskgate1/devices/sda1");
  CHECK(device_object_path("dm-0") == "/org/diskgate1/devices/dm_2d0");
  CHECK(device_object_path("a_b") == "/org/diskgate1/devices/a_5fb");  // '_' itself is escaped: no collisions
  CHECK(device_object_path("") == "/org/diskgate1/devices/_");
}

TEST_CASE("a device object path gives back its kernel name, and any other path none") {
  using diskgate::dbus::device_object_path;
  using diskgate::dbus::kernel_name_of;
  for (std::string name : {"sda1", "dm-0", "a_b", "", "nvme0n1p2", "md/0", "x\xff.y"})
    CHECK(kernel_name_of(device_object_path(name)) == name);
  for (const char* path : {"/org/diskgate1", "/org/diskgate1/devices", "/org/diskgate1/devices/", "/org/diskgate1/gate",
                           "/org/diskgate1/devicesX/sda", "/org/diskgate1/devices/sda/x", "/org/diskgate1/devices/a_2",
                           "/org/diskgate1/devices/a_zz", "/org/diskgate1/devices/a_41", "/org/diskgate1/devices/a_2D0"})
    CHECK_FALSE(kernel_name_of(path).has_value());
}

TEST_CASE("event loop: a callback that throws is logged and the loop goes on") {
  EventLoop loop;
  bool later = false;
  loop.add_timer(1ms, [] { throw std::runtime_error("callback failed"); });
  loop.add_timer(5ms, [&] {
    later = true;
    loop.stop(3);
  });
  CHECK(loop.run() == 3);
  CHECK(later);
}
