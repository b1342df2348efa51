// The daemon's connection to D-Bus, kept up across a restart of the bus.
// The gate and the device map never wait for it: when the bus goes away the
// objects on it are dropped (without throwing), and connecting again is
// tried on the event loop's timers, 1 s after the loss, then doubling up to
// 30 s. A new connection takes org.diskgate1 again and gets every object
// anew, announced with InterfacesAdded.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/event_loop.h"
#include "dbus/bus.h"

namespace diskgate::daemon {

class BusLink {
 public:
  // Connects to `bus` ("system", "session" or an address) and takes
  // org.diskgate1. Throws dbus::BusError when that fails: whether a bus
  // missing at start is fatal is the caller's call.
  BusLink(EventLoop& loop, std::string bus);
  ~BusLink() noexcept;
  BusLink(const BusLink&) = delete;
  BusLink& operator=(const BusLink&) = delete;

  // Starts serving on the loop. `attach` puts the daemon's objects on a
  // connection: now, and again after every reconnect. `detach` runs when
  // the bus is lost (or `attach` failed half-way) and drops every object
  // made on the connection, which is closed right after; it must not throw.
  void serve(std::function<void(dbus::Bus&)> attach, std::function<void()> detach);
  bool connected() const { return connection_ != nullptr; }

 private:
  EventLoop::Dynamic prepare() noexcept;
  void dispatch() noexcept;
  // Runs `attach` on connection_; false (and connection_ closed) when that failed.
  bool publish(std::string& failure) noexcept;
  void lost(const std::string& reason) noexcept;
  void retire() noexcept;
  void reconnect() noexcept;
  void retry_later() noexcept;

  EventLoop& loop_;
  std::string bus_;
  std::unique_ptr<dbus::Bus> connection_;
  std::function<void(dbus::Bus&)> attach_;
  std::function<void()> detach_;
  std::chrono::seconds backoff_{1};
  std::optional<EventLoop::TimerId> retry_timer_;
};

}  // namespace diskgate::daemon
