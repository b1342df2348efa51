#include "daemon/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <catch2/catch.hpp>
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
