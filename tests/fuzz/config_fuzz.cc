// libFuzzer target for daemon::parse_config. The input is split on NUL into
// the arguments; the environment answers a variable NAME with the value of
// the first piece "NAME=value" (so "MNT_SOURCE=UUID=..." after "--" both
// sets the variable and becomes a program argument).
// Invariants: parse_config never throws (std::stod's out_of_range is caught
// inside); it asks the environment for MNT_SOURCE, MNT_TARGET, MNT_FSTYPE
// and MNT_DATA only; errors carry a message; an accepted configuration has
// --uevents and --log-level among their choices, and a gate only with a
// source that parse_spec accepts as the same spec, an absolute target
// without a trailing '/' that is not "/", mount options that parse again,
// a non-empty argv whose first word is non-empty, an absolute runtime
// directory and timeouts within a year; without a gate no --user.
// Keep crashing inputs under tests/fuzz/regressions/config-fuzz/.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "require.h"
#include "daemon/config.h"
#include "devices/spec.h"
#include "gate/mount_options.h"

using diskgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diskgate;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  if (!input.empty()) {
    std::size_t start = 0;
    for (;;) {
      std::size_t nul = input.find('\0', start);
      args.emplace_back(input.substr(start, nul == std::string_view::npos ? std::string_view::npos : nul - start));
      if (nul == std::string_view::npos) break;
      start = nul + 1;
    }
  }
  daemon::Environment env = [&](const std::string& name) -> std::optional<std::string> {
    require(name == "MNT_SOURCE" || name == "MNT_TARGET" || name == "MNT_FSTYPE" || name == "MNT_DATA");
    for (const std::string& arg : args)
      if (arg.size() > name.size() && arg.starts_with(name) && arg[name.size()] == '=')
        return arg.substr(name.size() + 1);
    return std::nullopt;
  };
  auto parsed = daemon::parse_config(args, env);
  if (auto* error = std::get_if<daemon::ConfigError>(&parsed)) {
    require(!error->message.empty());
    return 0;
  }
  const daemon::DaemonConfig& config = std::get<daemon::DaemonConfig>(parsed);
  if (config.help) {
    require(!config.help_text.empty());
    return 0;
  }
  require(config.uevents == "auto" || config.uevents == "udev" || config.uevents == "kernel");
  for (std::string_view level : {"error", "warning", "notice", "info", "debug"})
    if (config.log_level == level) goto level_ok;
  std::abort();
level_ok:
  if (!config.gate) {
    require(config.user.empty());
    return 0;
  }
  const gate::Config& g = *config.gate;
  auto spec = devices::parse_spec(g.source_text);
  require(std::holds_alternative<devices::Spec>(spec) && std::get<devices::Spec>(spec) == g.source);
  require(g.target.starts_with('/') && g.target != "/" && !g.target.ends_with('/'));
  auto options = gate::parse_mount_options(g.options.data);
  require(std::holds_alternative<gate::MountOptions>(options));
  require(!g.argv.empty() && !g.argv.front().empty());
  require(g.runtime_dir.starts_with('/'));
  constexpr auto year = std::chrono::milliseconds(365LL * 24 * 3600 * 1000);
  require(g.stop_timeout.count() >= 0 && g.stop_timeout <= year);
  require(!g.degraded_after || (g.degraded_after->count() >= 0 && *g.degraded_after <= year));
  return 0;
}
