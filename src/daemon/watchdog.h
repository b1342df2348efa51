// systemd's service watchdog (WatchdogSec=) without libsystemd: the manager
// passes the interval in WATCHDOG_USEC (for the process in WATCHDOG_PID) and
// restarts the service when no "WATCHDOG=1" arrives within it. diskgated
// pings from a timer on its event loop, so what a stuck loop stops is the
// ping: the loop owns the gate, and a gate that cannot react must restart.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string_view>

#include "gate/loop.h"

namespace diskgate::daemon {

// The interval systemd asks for, as sd_watchdog_enabled(3) reads it:
// `usec` a positive decimal number of microseconds; `pid`, when given, must
// be `self` (else the request is for another process). nullopt when not
// asked for or malformed.
std::optional<std::chrono::microseconds> watchdog_interval(std::optional<std::string_view> usec,
                                                           std::optional<std::string_view> pid, pid_t self);

// Sends "WATCHDOG=1" every half `interval` (sd_watchdog_enabled's advice),
// from timers on `loop` (the daemon's EventLoop), for as long as it runs.
void keep_watchdog_fed(gate::Loop& loop, std::chrono::microseconds interval);

}  // namespace diskgate::daemon
