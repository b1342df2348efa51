// What the gate needs from an event loop: timers, a clock, and file
// descriptors to watch (a child's pidfd). The daemon's EventLoop implements
// it; unit tests drive a manual one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace diskgate::gate {

class Loop {
 public:
  using Clock = std::chrono::steady_clock;
  using TimerId = std::uint64_t;
  virtual ~Loop() = default;
  virtual TimerId after(Clock::duration delay, std::function<void()> callback) = 0;
  virtual void cancel(TimerId id) = 0;
  virtual Clock::time_point now() const = 0;
  virtual void watch_readable(int fd, std::function<void()> callback) = 0;
  virtual void unwatch(int fd) = 0;
};

}  // namespace diskgate::gate
