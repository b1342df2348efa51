#include "daemon/event_loop.h"

#include "common/log.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <vector>

namespace diskgate::daemon {

void EventLoop::watch(int fd, short events, std::function<void(short)> on_ready) {
  watches_[fd] = Watch{events, std::move(on_ready)};
}

void EventLoop::unwatch(int fd) { watches_.erase(fd); }

void EventLoop::watch_dynamic(std::function<Dynamic()> prepare, std::function<void()> dispatch) {
  dynamic_prepare_ = std::move(prepare);
  dynamic_dispatch_ = std::move(dispatch);
}

void EventLoop::unwatch_dynamic() {
  dynamic_prepare_ = nullptr;
  dynamic_dispatch_ = nullptr;
}

EventLoop::TimerId EventLoop::add_timer(Clock::time_point when, std::function<void()> callback) {
  TimerId id = next_timer_++;
  timers_[id] = Timer{when, std::move(callback)};
  deadlines_.emplace(when, id);
  return id;
}

void EventLoop::cancel_timer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  deadlines_.erase({it->second.when, id});
  timers_.erase(it);
}

namespace {
// A callback that throws is a bug or an OS failure we did not foresee; the
// daemon goes on (the gate must still be able to stop the program and
// unmount) and says what happened.
template <typename Callback, typename... Args>
void guarded(const Callback& callback, Args... args) {
  try {
    callback(args...);
  } catch (const std::exception& e) {
    log(Level::error, "internal error, carrying on: {}", e.what());
  }
}
}  // namespace

// Fires the timers due now, earliest deadline first. One that falls due
// while earlier callbacks run fires in this round too; timers added by the
// callbacks wait for the next round, so that a callback re-arming itself
// with no delay cannot keep the loop from polling.
void EventLoop::fire_due_timers() {
  const TimerId added_before = next_timer_;
  while (!deadlines_.empty()) {
    auto next = std::find_if(deadlines_.begin(), deadlines_.end(),
                             [&](const auto& entry) { return entry.second < added_before; });
    if (next == deadlines_.end() || next->first > Clock::now()) return;
    TimerId id = next->second;
    deadlines_.erase(next);
    auto it = timers_.find(id);
    auto callback = std::move(it->second.callback);
    timers_.erase(it);
    guarded(callback);
  }
}

int EventLoop::run() {
  while (!stopped_) {
    std::vector<pollfd> fds;
    std::optional<Clock::time_point> deadline;
    if (!deadlines_.empty()) deadline = deadlines_.begin()->first;
    bool has_dynamic = static_cast<bool>(dynamic_prepare_);
    if (has_dynamic) {
      try {
        Dynamic d = dynamic_prepare_();
        fds.push_back({d.fd, d.events, 0});
        if (d.deadline && (!deadline || *d.deadline < *deadline)) deadline = d.deadline;
      } catch (const std::exception& e) {
        log(Level::error, "internal error, carrying on: {}", e.what());
        has_dynamic = false;
      }
    }
    for (const auto& [fd, w] : watches_) fds.push_back({fd, w.events, 0});

    int timeout_ms = -1;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
    }
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");

    // The bus first: it may have been woken for a timeout, not only for I/O.
    // Run from a copy: a dispatch may drop its own source.
    if (has_dynamic && dynamic_dispatch_) {
      auto dispatch = dynamic_dispatch_;
      guarded(dispatch);
    }
    for (std::size_t i = has_dynamic ? 1 : 0; n > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto it = watches_.find(fds[i].fd);
      if (it != watches_.end()) {
        auto callback = it->second.on_ready;  // a callback may unwatch itself
        guarded(callback, fds[i].revents);
      }
      if (stopped_) break;
    }

    fire_due_timers();
  }
  return *stopped_;
}

}  // namespace diskgate::daemon
