#include "daemon/bus_link.h"

#include <time.h>

#include <algorithm>
#include <cstdint>

#include "common/log.h"
#include "dbus/object_path.h"

namespace diskgate::daemon {

namespace {

using namespace std::chrono_literals;

constexpr std::chrono::seconds first_retry = 1s;
constexpr std::chrono::seconds longest_retry = 30s;
// RequestName on a bus that came back: bounded, since the loop (and the
// gate on it) waits meanwhile. At start sd-bus's default (25 s) applies.
constexpr std::uint64_t reconnect_call_timeout_usec = 2'000'000;

// sd-bus gives an absolute CLOCK_MONOTONIC deadline in microseconds.
std::optional<EventLoop::Clock::time_point> bus_deadline(std::uint64_t timeout_usec) {
  if (timeout_usec == UINT64_MAX) return std::nullopt;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  auto now_usec = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000 + static_cast<std::uint64_t>(now.tv_nsec) / 1000;
  auto left = timeout_usec > now_usec ? timeout_usec - now_usec : 0;
  return EventLoop::Clock::now() + std::chrono::microseconds(left);
}

}  // namespace

BusLink::BusLink(EventLoop& loop, std::string bus)
    : loop_(loop), bus_(std::move(bus)), connection_(std::make_unique<dbus::Bus>(bus_, dbus::bus_name, std::nullopt)) {}

BusLink::~BusLink() noexcept {
  if (attach_) loop_.unwatch_dynamic();
  if (retry_timer_) loop_.cancel_timer(*retry_timer_);
}

void BusLink::serve(std::function<void(dbus::Bus&)> attach, std::function<void()> detach) {
  attach_ = std::move(attach);
  detach_ = std::move(detach);
  loop_.watch_dynamic([this] { return prepare(); }, [this] { dispatch(); });
  std::string failure;
  if (!publish(failure)) lost(failure);
}

EventLoop::Dynamic BusLink::prepare() noexcept {
  if (connection_) {
    try {
      auto poll_data = connection_->poll_data();
      return {poll_data.fd, poll_data.events, bus_deadline(poll_data.timeout_usec)};
    } catch (const std::exception& e) {  // closed: the bus is gone
      lost(e.what());
    }
  }
  return {-1, 0, std::nullopt};  // polls nothing until the next connection
}

void BusLink::dispatch() noexcept {
  if (!connection_) return;
  try {
    connection_->process();
  } catch (const std::exception& e) {
    // sd-bus reports the hang-up as a local Disconnected message, then
    // fails with ENOTCONN; anything else on an open bus is not a loss.
    if (connection_->is_open())
      log(Level::error, "internal error, carrying on: {}", e.what());
    else
      lost(e.what());
  }
}

bool BusLink::publish(std::string& failure) noexcept {
  try {
    attach_(*connection_);
    return true;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  // Free the name for the next try if the bus is in fact still there.
  connection_->release_name();
  retire();
  return false;
}

void BusLink::retire() noexcept {
  try {
    if (detach_) detach_();
  } catch (const std::exception& e) {
    log(Level::error, "internal error, carrying on: {}", e.what());
  }
  // detach_ dropped every object made on it: nothing refers to it now.
  connection_.reset();
}

void BusLink::lost(const std::string& reason) noexcept {
  log(Level::warning, "D-Bus: lost the connection to the bus ({}); the gate and the device map go on, "
      "reconnecting in {} s", reason, first_retry.count());
  if (connection_) retire();
  backoff_ = first_retry;
  retry_later();
}

void BusLink::retry_later() noexcept {
  if (retry_timer_) loop_.cancel_timer(*retry_timer_);
  retry_timer_ = loop_.add_timer(backoff_, [this] {
    retry_timer_.reset();
    reconnect();
  });
}

void BusLink::reconnect() noexcept {
  std::string failure;
  try {
    connection_ = std::make_unique<dbus::Bus>(bus_, dbus::bus_name, reconnect_call_timeout_usec);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (connection_ && publish(failure)) {
    backoff_ = first_retry;
    log(Level::notice, "D-Bus: connected again to {}, serving {}", bus_, dbus::bus_name);
    return;
  }
  backoff_ = std::min(backoff_ * 2, longest_retry);
  log(Level::info, "D-Bus: cannot connect yet ({}); next try in {} s", failure, backoff_.count());
  retry_later();
}

}  // namespace diskgate::daemon
