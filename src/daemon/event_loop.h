// The daemon's one event loop: poll(2) over file descriptors plus timers.
// Everything that owns state runs on it; other threads only post results
// through a file descriptor (see ProbeWorker).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <poll.h>
#include <optional>
#include <set>
#include <utility>

#include "gate/loop.h"

namespace diskgate::daemon {

class EventLoop final : public gate::Loop {
 public:
  // gate::Loop
  TimerId after(Clock::duration delay, std::function<void()> callback) override {
    return add_timer(delay, std::move(callback));
  }
  void cancel(TimerId id) override { cancel_timer(id); }
  Clock::time_point now() const override { return Clock::now(); }
  void watch_readable(int fd, std::function<void()> callback) override {
    watch(fd, POLLIN, [callback = std::move(callback)](short) { callback(); });
  }

  // Calls `on_ready(revents)` whenever `fd` has any of `events`.
  void watch(int fd, short events, std::function<void(short)> on_ready);
  void unwatch(int fd) override;
  // A source whose fd, events and deadline change between polls (sd-bus):
  // `prepare` is asked before every poll, `dispatch` runs after it. An fd
  // of -1 polls nothing (a bus that is gone); a `prepare` that throws is
  // logged and skipped for that round.
  struct Dynamic {
    int fd;
    short events;
    std::optional<Clock::time_point> deadline;
  };
  void watch_dynamic(std::function<Dynamic()> prepare, std::function<void()> dispatch);
  void unwatch_dynamic();

  TimerId add_timer(Clock::time_point when, std::function<void()> callback);
  TimerId add_timer(Clock::duration after, std::function<void()> callback) {
    return add_timer(Clock::now() + after, std::move(callback));
  }
  void cancel_timer(TimerId id);

  // Runs until stop(); returns the value given to stop(). Due timers fire
  // in deadline order (ties in the order they were added).
  int run();
  void stop(int status) {
    stopped_ = status;
  }

 private:
  struct Watch {
    short events;
    std::function<void(short)> on_ready;
  };
  struct Timer {
    Clock::time_point when;
    std::function<void()> callback;
  };
  void fire_due_timers();

  std::map<int, Watch> watches_;
  std::map<TimerId, Timer> timers_;
  // The same timers by (deadline, id): the next one due is the first.
  std::set<std::pair<Clock::time_point, TimerId>> deadlines_;
  TimerId next_timer_ = 1;
  std::function<Dynamic()> dynamic_prepare_;
  std::function<void()> dynamic_dispatch_;
  std::optional<int> stopped_;
};

}  // namespace diskgate::daemon
