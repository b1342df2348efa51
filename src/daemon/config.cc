#include "daemon/config.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "devices/spec.h"

namespace diskgate::daemon {

namespace {

constexpr const char* default_program = "rest-server";

std::optional<std::chrono::milliseconds> seconds_option(const std::string& name, const std::string& text,
                                                        std::string& error) {
  try {
    std::size_t used = 0;
    double seconds = std::stod(text, &used);
    if (used == text.size() && std::isfinite(seconds) && seconds >= 0 && seconds <= 365.0 * 24 * 3600)
      return std::chrono::milliseconds(static_cast<long long>(std::llround(seconds * 1000)));
  } catch (const std::exception&) {
  }
  error = fmt::format("{} {}: expected a number of seconds", name, text);
  return std::nullopt;
}

// One option of diskgated's command line. CLI11, used by diskgatectl, is
// not linked here: it was a quarter of the daemon's code, and the daemon's
// resident memory is a goal (bench/hotplug).
struct Option {
  const char* name;
  std::string* value;  // nullptr: a flag, set through `flag`
  std::vector<std::string_view> choices;
  const char* help;
  bool* flag = nullptr;
  bool given = false;
};

std::string help_text(const std::vector<Option>& options) {
  std::string text =
      "diskgated: live block device map, and a gate that mounts a filesystem once complete and runs rest-server on "
      "it\nUsage: diskgated [OPTIONS] [-- PROGRAM ARGUMENTS...]\n\nOptions:\n  -h, --help\n      Print this help "
      "message and exit\n";
  for (const Option& option : options) {
    std::string usage = option.name;
    if (option.value) usage += option.choices.empty() ? " VALUE" : fmt::format(" {{{}}}", fmt::join(option.choices, ","));
    text += fmt::format("  {}\n      {}\n", usage, option.help);
  }
  return text + "\nEverything after -- goes to the program unchanged.\n";
}

// Fills the options from `args`: --name VALUE, --name=VALUE or a flag.
std::optional<ConfigError> parse_options(const std::vector<std::string>& args, std::vector<Option>& options,
                                         bool& help) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      help = true;
      return std::nullopt;
    }
    if (arg.empty() || arg[0] != '-')
      return ConfigError{fmt::format("unexpected argument {}: the program and its arguments go after --", arg)};
    std::size_t equals = arg.find('=');
    std::string name = arg.substr(0, equals);
    auto option = std::find_if(options.begin(), options.end(), [&](const Option& o) { return name == o.name; });
    if (option == options.end()) return ConfigError{fmt::format("unknown option {} (see --help)", name)};
    if (option->given) return ConfigError{fmt::format("{} is given twice", name)};
    option->given = true;
    if (!option->value) {
      if (equals != std::string::npos) return ConfigError{fmt::format("{} takes no value", name)};
      *option->flag = true;
      continue;
    }
    if (equals != std::string::npos) {
      *option->value = arg.substr(equals + 1);
    } else if (i + 1 < args.size()) {
      *option->value = args[++i];
    } else {
      return ConfigError{fmt::format("{} needs a value", name)};
    }
    const auto& choices = option->choices;
    if (!choices.empty() && std::find(choices.begin(), choices.end(), *option->value) == choices.end())
      return ConfigError{fmt::format("{} {}: expected one of {}", name, *option->value, fmt::join(choices, ", "))};
  }
  return std::nullopt;
}

}  // namespace

std::variant<DaemonConfig, ConfigError> parse_config(const std::vector<std::string>& args, const Environment& env) {
  DaemonConfig config;
  auto dashdash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> own(args.begin(), dashdash);
  std::vector<std::string> after;
  bool has_dashdash = dashdash != args.end();
  if (has_dashdash) after.assign(dashdash + 1, args.end());

  auto from_env = [&](const char* name) { return env(name).value_or(""); };
  std::string source = from_env("MNT_SOURCE"), target = from_env("MNT_TARGET");
  std::string fstype = from_env("MNT_FSTYPE"), data = from_env("MNT_DATA");
  std::string options, exec, restart = "always", stop_timeout = "10", degraded_after, user;
  std::string runtime_dir = "/run/diskgate";

  std::vector<Option> table{
      {"--uevents", &config.uevents, {"auto", "udev", "kernel"}, "Where hotplug events come from (default: auto)"},
      {"--bus", &config.bus, {}, "D-Bus to serve on: system, session or an address (unix:path=...)"},
      {"--no-bus", nullptr, {}, "Serve no D-Bus (appliances without one)", &config.no_bus},
      {"--log-level", &config.log_level, {"error", "warning", "notice", "info", "debug"}, "How much to log (default: info)"},
      {"--source", &source, {},
       "What to mount: UUID=, LABEL=, PARTUUID=, PARTLABEL=, a UUID or /dev path (default: $MNT_SOURCE)"},
      {"--target", &target, {}, "Mount point, created 0700 when missing (default: $MNT_TARGET)"},
      {"--fstype", &fstype, {},
       "Expected filesystem type; refused when the probe disagrees (default: $MNT_FSTYPE, else the probed type)"},
      {"--options", &options, {}, "mount(8)-style options: ro, noatime, nodev, ..., the rest as data"},
      {"--data", &data, {}, "Raw filesystem data appended to the options (default: $MNT_DATA)"},
      {"--exec", &exec, {}, "The program to run on the mounted filesystem (default: rest-server)"},
      {"--restart", &restart, {"always", "on-failure", "no"}, "Restart the program (default: always)"},
      {"--stop-timeout", &stop_timeout, {}, "Seconds between SIGTERM and SIGKILL (default: 10)"},
      {"--degraded-after", &degraded_after, {},
       "Mount a btrfs with members missing, degraded, after this many seconds (default: never)"},
      {"--user", &user, {},
       "Run the program as USER[:GROUP] (names or numeric ids), without capabilities (default: as diskgated)"},
      {"--runtime-dir", &runtime_dir, {},
       "Where the running program is recorded, so that a restarted diskgated stops it (default: /run/diskgate)"},
  };
  if (auto error = parse_options(own, table, config.help)) return *error;
  if (config.help) {
    config.help_text = help_text(table);
    return config;
  }

  config.bus_given = std::any_of(table.begin(), table.end(), [](const Option& o) { return o.given && o.name == std::string_view("--bus"); });
  if (source.empty()) {
    if (!target.empty() || !exec.empty() || has_dashdash || !user.empty())
      return ConfigError{"--target, --exec, --user and a program after -- need --source (or MNT_SOURCE)"};
    return config;
  }
  gate::Config gate;
  gate.source_text = source;
  auto spec = devices::parse_spec(source);
  if (auto* error = std::get_if<devices::SpecError>(&spec)) return ConfigError{"--source: " + error->message};
  gate.source = std::get<devices::Spec>(spec);
  if (target.empty()) return ConfigError{"--target (or MNT_TARGET) is required with --source"};
  if (target.front() != '/') return ConfigError{fmt::format("--target {}: must be an absolute path", target)};
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  if (target == "/") return ConfigError{"--target /: refusing to mount over the root directory"};
  gate.target = target;
  gate.fstype = fstype;
  auto parsed = gate::parse_mount_options(options);
  if (auto* error = std::get_if<gate::MountOptionsError>(&parsed)) return ConfigError{"--options: " + error->message};
  gate.options = std::get<gate::MountOptions>(parsed);
  gate.data = data;
  gate.restart = restart == "always" ? gate::RestartPolicy::always
                 : restart == "on-failure" ? gate::RestartPolicy::on_failure
                                           : gate::RestartPolicy::no;
  std::string error;
  auto timeout = seconds_option("--stop-timeout", stop_timeout, error);
  if (!timeout) return ConfigError{error};
  gate.stop_timeout = *timeout;
  if (!degraded_after.empty()) {
    gate.degraded_after = seconds_option("--degraded-after", degraded_after, error);
    if (!gate.degraded_after) return ConfigError{error};
  }
  if (!exec.empty()) {
    gate.argv.push_back(exec);
    gate.argv.insert(gate.argv.end(), after.begin(), after.end());
  } else if (!after.empty() && !after.front().empty() && after.front().front() != '-') {
    gate.argv = after;
  } else {
    gate.argv.push_back(default_program);
    gate.argv.insert(gate.argv.end(), after.begin(), after.end());
  }
  if (runtime_dir.empty() || runtime_dir.front() != '/')
    return ConfigError{fmt::format("--runtime-dir {}: must be an absolute path", runtime_dir)};
  gate.runtime_dir = runtime_dir;
  config.user = user;
  config.gate = std::move(gate);
  return config;
}

std::optional<std::string> find_program(const std::string& name, const std::string& path_variable,
                                        const std::function<bool(const std::string&)>& executable) {
  if (name.find('/') != std::string::npos) return executable(name) ? std::optional(name) : std::nullopt;
  std::vector<std::string> directories;
  std::size_t start = 0;
  while (start <= path_variable.size()) {
    std::size_t end = path_variable.find(':', start);
    if (end == std::string::npos) end = path_variable.size();
    directories.push_back(end == start ? "." : path_variable.substr(start, end - start));
    start = end + 1;
  }
  if (path_variable.empty()) directories.clear();
  directories.push_back("/usr/local/bin");
  directories.push_back("/user");
  for (const std::string& directory : directories) {
    std::string candidate = directory + "/" + name;
    if (executable(candidate)) return candidate;
  }
  return std::nullopt;
}

}  // namespace diskgate::daemon
