// The diskgatectl commands that talk to diskgated over D-Bus (org.diskgate1):
// list, resolve, resolve-all, fs, wait and monitor; status and the gate's
// start, stop, restart and reload-program. The run_* functions are built
// into diskgatectl-bus.so (cli/bus_module.h), not into diskgatectl.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>

namespace diskgate::cli {

// Exit statuses of the bus commands.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;      // not found, ambiguous, timeout, daemon error
inline constexpr int exit_unreachable = 3;  // no bus, or diskgated not running on it
inline constexpr int exit_usage = 4;

struct BusOptions {
  std::string bus = "system";  // "system", "session" or a D-Bus address (unix:path=...)
  bool json = false;           // one JSON document (monitor: one object per line)
};

// Whether `--bus` names something we can connect to: system, session, or
// an address of the form transport:key=value[,...].
inline bool valid_bus_choice(std::string_view bus) {
  if (bus == "system" || bus == "session") return true;
  auto colon = bus.find(':');
  return colon != std::string_view::npos && colon > 0 && bus.find('=', colon) != std::string_view::npos;
}

struct WaitOptions {
  std::string spec;
  bool complete = false;  // wait until the spec's filesystem has all its devices
  double timeout = -1;    // seconds; negative: no limit
};

// Each prints its result on `out`, one "diskgatectl: ..." line on `err` when
// it fails, and returns an exit status from above.

// Every device, sorted by name: NAME NODE TYPE LABEL UUID STATE.
int run_list(const BusOptions& options, std::ostream& out, std::ostream& err);
// The one device node that `spec` names.
int run_resolve(const BusOptions& options, const std::string& spec, std::ostream& out, std::ostream& err);
// Every device node that `spec` names, one per line.
int run_resolve_all(const BusOptions& options, const std::string& spec, std::ostream& out, std::ostream& err);
// What the daemon knows of the filesystem with this UUID.
int run_fs(const BusOptions& options, const std::string& uuid, std::ostream& out, std::ostream& err);
// Blocks until the spec resolves (or, with `complete`, until its filesystem
// is complete) and prints the node(s); exit_failure on timeout.
int run_wait(const BusOptions& options, const WaitOptions& wait, std::ostream& out, std::ostream& err);
// Prints each signal of the daemon as one line until SIGINT or SIGTERM.
int run_monitor(const BusOptions& options, std::ostream& out, std::ostream& err);

// The gate's status (org.diskgate1.Gate on /org/diskgate1/gate).
int run_status(const BusOptions& options, std::ostream& out, std::ostream& err);
// Calls a method of the gate without arguments: Start, Stop, Restart, ReloadProgram.
int run_gate_method(const BusOptions& options, const std::string& method, std::ostream& err);

}  // namespace diskgate::cli
