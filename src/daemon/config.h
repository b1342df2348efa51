// diskgated's command line and environment, parsed and checked without
// touching the system (the program's path is looked up later, in main).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "gate/gate.h"

namespace diskgate::daemon {

struct DaemonConfig {
  std::string uevents = "auto";  // auto, udev, kernel
  std::string bus = "system";    // system, session or a D-Bus address
  // Without --bus, a missing system bus is not fatal (gokrazy has none): the
  // daemon runs without D-Bus and says so.
  bool bus_given = false;
  bool no_bus = false;
  std::string log_level = "info";
  std::optional<gate::Config> gate;  // set when --source (or MNT_SOURCE) is given
  // --user as given; main resolves it into gate->credentials (it reads
  // /etc/passwd and /etc/group, which parsing must not touch).
  std::string user;
  bool help = false;
  std::string help_text;
};

struct ConfigError {
  std::string message;  // names the argument and what is wrong
};

// Reads the environment variable `name`; nullopt when unset.
using Environment = std::function<std::optional<std::string>(const std::string& name)>;

// `args` excludes argv[0]. MNT_SOURCE, MNT_TARGET, MNT_FSTYPE and MNT_DATA
// are the defaults of --source, --target, --fstype and --data (the wrapper
// diskgated replaces used them).
//
// After `--`: with --exec, everything is the program's arguments. Without
// it, a first word not starting with '-' is the program and the rest its
// arguments; otherwise the program is rest-server and everything after `--`
// its arguments (so a wrapper's flags.txt works with "--" on top).
std::variant<DaemonConfig, ConfigError> parse_config(const std::vector<std::string>& args, const Environment& env);

// Where to find a program named without '/': PATH, then /usr/local/bin and
// /user (gokrazy). `executable` tells whether a path can be run.
std::optional<std::string> find_program(const std::string& name, const std::string& path_variable,
                                        const std::function<bool(const std::string&)>& executable);

}  // namespace diskgate::daemon
