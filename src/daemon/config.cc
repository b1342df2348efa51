#include "daemon/config.h"

#include <CLI/CLI.hpp>
#include <cmath>

#include <fmt/format.h>

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
  std::string options, exec, restart = "always", stop_timeout = "10", degraded_after;

  CLI::App app{"diskgated: live block device map, and a gate that mounts a filesystem once complete and runs "
               "rest-server on it",
               "diskgated"};
  app.add_option("--uevents", config.uevents, "Where hotplug events come from: auto, udev or kernel")
      ->check(CLI::IsMember({"auto", "udev", "kernel"}));
  app.add_option("--bus", config.bus, "D-Bus to serve on: system, session or an address (unix:path=...)");
  app.add_flag("--no-bus", config.no_bus, "Serve no D-Bus (appliances without one)");
  app.add_option("--log-level", config.log_level, "error, warning, notice, info or debug")
      ->check(CLI::IsMember({"error", "warning", "notice", "info", "debug"}));
  app.add_option("--source", source, "What to mount: UUID=, LABEL=, PARTUUID=, PARTLABEL=, a UUID or /dev path "
                                     "(default: $MNT_SOURCE)");
  app.add_option("--target", target, "Mount point, created 0700 when missing (default: $MNT_TARGET)");
  app.add_option("--fstype", fstype, "Expected filesystem type; refused when the probe disagrees (default: "
                                     "$MNT_FSTYPE, else the probed type)");
  app.add_option("--options", options, "mount(8)-style options: ro, noatime, nodev, ..., the rest as data");
  app.add_option("--data", data, "Raw filesystem data appended to the options (default: $MNT_DATA)");
  app.add_option("--exec", exec, "The program to run on the mounted filesystem (default: rest-server)");
  app.add_option("--restart", restart, "Restart the program: always, on-failure or no")
      ->check(CLI::IsMember({"always", "on-failure", "no"}));
  app.add_option("--stop-timeout", stop_timeout, "Seconds between SIGTERM and SIGKILL (default 10)");
  app.add_option("--degraded-after", degraded_after,
                 "Mount a btrfs with members missing, degraded, after this many seconds (default: never)");
  app.footer("Everything after -- goes to the program unchanged.");

  std::vector<std::string> reversed(own.rbegin(), own.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    config.help = true;
    config.help_text = app.help();
    return config;
  } catch (const CLI::ParseError& e) {
    return ConfigError{e.what()};
  }

  config.bus_given = app.count("--bus") > 0;
  if (source.empty()) {
    if (!target.empty() || !exec.empty() || has_dashdash)
      return ConfigError{"--target, --exec and a program after -- need --source (or MNT_SOURCE)"};
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
