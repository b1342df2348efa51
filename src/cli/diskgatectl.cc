// diskgatectl: the command-line client. `probe` works without the daemon;
// the other commands ask diskgated over D-Bus, through diskgatectl-bus.so,
// loaded only when one of them runs (cli/bus_module.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cassert>
#include <iostream>
#include <map>
#include <span>
#include <string_view>

#include "cli/bus_commands.h"
#include "cli/bus_module.h"
#include "cli/probe_command.h"

#ifndef DISKGATE_DBUS
#error "DISKGATE_DBUS (1 or 0, from -Ddbus) must be defined by the build"
#endif

namespace {

using diskgate::probe::OutputFormat;

constexpr int usage_error = 4;  // blkid's exit status for bad usage
static_assert(usage_error == diskgate::cli::exit_usage);

void add_probe_command(CLI::App& app, diskgate::cli::ProbeOptions& options, int& status) {
  CLI::App* probe = app.add_subcommand("probe", "Identify filesystems and partition tables, as blkid does");
  probe->add_flag("-p,--low-level", options.low_level, "Print what `blkid -p` prints (PART_ENTRY_* tags)");
  std::map<std::string, OutputFormat> formats{{"full", OutputFormat::full},
                                              {"export", OutputFormat::export_},
                                              {"value", OutputFormat::value},
                                              {"udev", OutputFormat::udev},
                                              {"json", OutputFormat::json}};
  probe->add_option_function<std::string>(
          "-o,--output", [&options, formats](const std::string& name) { options.format = formats.at(name); },
          "Output format: full, export, value, udev or json")
      ->check(CLI::IsMember({"full", "export", "value", "udev", "json"}));
  probe->add_option("-s,--match-tag", options.tags, "Show only this tag (repeatable)")
      ->allow_extra_args(false);  // -s takes one tag; what follows is a path
  probe->add_flag("--debug", options.debug, "Say why each prober rejected the device");
  probe->add_option("path", options.paths, "Block devices or image files")->required();
  probe->callback([&] { status = diskgate::cli::run_probe(options, std::cout, std::cerr); });
}

struct BusCommandOptions {
  diskgate::cli::BusOptions bus;
  std::string spec;  // resolve, resolve-all
  std::string uuid;  // fs
  diskgate::cli::WaitOptions wait;
};

// Runs bus command `name` through the module; status 4 when this build has
// no D-Bus support or the module cannot be loaded (one line on stderr says why).
template <typename Call>
int bus_call([[maybe_unused]] const char* name, [[maybe_unused]] Call call) {
#if DISKGATE_DBUS
  const diskgate::cli::BusModule* module = diskgate::cli::load_bus_module(std::cerr);
  if (module == nullptr) return usage_error;
  return call(*module);
#else
  std::cerr << "diskgatectl: this build has no D-Bus support; '" << name << "' needs diskgated's bus API"
            << std::endl;
  return usage_error;
#endif
}

void add_bus_commands(CLI::App& app, BusCommandOptions& options, int& status) {
  using namespace diskgate::cli;
  using Module = diskgate::cli::BusModule;
  app.add_option("--bus", options.bus.bus, "Bus of diskgated: system, session or a D-Bus address (unix:path=...)")
      ->check(CLI::Validator(
          [](std::string& value) {
            return valid_bus_choice(value) ? std::string{} : "expected system, session or a D-Bus address";
          },
          ""))
      ->type_name("system|session|ADDRESS")
      ->capture_default_str();
  auto json_flag = [&options](CLI::App* command) {
    command->add_flag("--json", options.bus.json, "Print JSON instead of text");
  };

  CLI::App* list = app.add_subcommand("list", "List every device diskgated knows, sorted by name");
  json_flag(list);
  list->callback([&] {
    status = bus_call("list", [&](const Module& bus) { return bus.list(options.bus, std::cout, std::cerr); });
  });

  CLI::App* resolve = app.add_subcommand("resolve", "Print the one device node SPEC names (UUID=, LABEL=, ...)");
  json_flag(resolve);
  resolve->add_option("spec", options.spec, "UUID=, UUID_SUB=, LABEL=, PARTUUID=, PARTLABEL=, a UUID or a path")
      ->required();
  resolve->callback([&] {
    status = bus_call("resolve",
                      [&](const Module& bus) { return bus.resolve(options.bus, options.spec, std::cout, std::cerr); });
  });

  CLI::App* resolve_all = app.add_subcommand("resolve-all", "Print every device node SPEC names, one per line");
  json_flag(resolve_all);
  resolve_all->add_option("spec", options.spec, "UUID=, UUID_SUB=, LABEL=, PARTUUID=, PARTLABEL=, a UUID or a path")
      ->required();
  resolve_all->callback([&] {
    status = bus_call("resolve-all", [&](const Module& bus) {
      return bus.resolve_all(options.bus, options.spec, std::cout, std::cerr);
    });
  });

  CLI::App* fs = app.add_subcommand("fs", "Show the filesystem with this UUID: its devices and whether it is complete");
  json_flag(fs);
  fs->add_option("uuid", options.uuid, "Filesystem UUID")->required();
  fs->callback([&] {
    status = bus_call("fs", [&](const Module& bus) { return bus.fs(options.bus, options.uuid, std::cout, std::cerr); });
  });

  CLI::App* status_command = app.add_subcommand("status", "Show the gate: state, mount, program, last error");
  json_flag(status_command);
  status_command->callback([&] {
    status = bus_call("status", [&](const Module& bus) { return bus.status(options.bus, std::cout, std::cerr); });
  });
  for (auto [name, method, help] : {std::tuple{"start", "Start", "Let the gate mount and run again after stop"},
                                    std::tuple{"stop", "Stop", "Stop the program, unmount, and hold until start"},
                                    std::tuple{"restart", "Restart", "Stop and start the program; the mount stays"},
                                    std::tuple{"reload-program", "ReloadProgram",
                                               "Send SIGHUP to the program (never sent otherwise)"}}) {
    CLI::App* command = app.add_subcommand(name, help);
    command->callback([&, command_name = name, method = std::string(method)] {
      status = bus_call(command_name,
                        [&](const Module& bus) { return bus.gate_method(options.bus, method, std::cerr); });
    });
  }

  CLI::App* wait = app.add_subcommand("wait", "Wait until SPEC names a device, then print its node");
  json_flag(wait);
  wait->add_option("spec", options.wait.spec, "UUID=, UUID_SUB=, LABEL=, PARTUUID=, PARTLABEL=, a UUID or a path")
      ->required();
  wait->add_flag("--complete", options.wait.complete,
                 "Wait until the filesystem has all its devices, then print them");
  wait->add_option("--timeout", options.wait.timeout, "Give up after SEC seconds (exit 1); default: never")
      ->type_name("SEC")
      ->check(CLI::NonNegativeNumber);
  wait->callback([&] {
    status = bus_call("wait",
                      [&](const Module& bus) { return bus.wait(options.bus, options.wait, std::cout, std::cerr); });
  });

  CLI::App* monitor = app.add_subcommand("monitor", "Print diskgated's events as they happen, until interrupted");
  json_flag(monitor);
  monitor->callback([&] {
    status = bus_call("monitor", [&](const Module& bus) { return bus.monitor(options.bus, std::cout, std::cerr); });
  });
}

// Every subcommand's name. A plain probe command line naming one as a path
// or tag is left to CLI11 (cli/probe_command.h); main() checks the list.
constexpr std::string_view subcommand_names[] = {"probe",  "list",  "resolve", "resolve-all",    "fs",   "status",
                                                 "start",  "stop",  "restart", "reload-program", "wait", "monitor"};

}  // namespace

int main(int argc, char** argv) {
  // The common case first: a plain `diskgatectl probe ...` is parsed without
  // building the CLI11 parser, whose construction costs about as much as
  // probing a disk; anything else goes to CLI11 below.
  if (argc >= 2 && std::string_view(argv[1]) == "probe") {
    std::span<const char* const> args(argv + 2, static_cast<std::size_t>(argc - 2));
    if (auto options = diskgate::cli::parse_plain_probe(args, subcommand_names))
      return diskgate::cli::run_probe(*options, std::cout, std::cerr);
  }

  CLI::App app{"diskgatectl: identify disks and control diskgated"};
  app.require_subcommand(1);
  app.fallthrough();  // --bus may also follow the subcommand (set before adding them: they inherit it)
  int status = 0;
  diskgate::cli::ProbeOptions probe_options;
  add_probe_command(app, probe_options, status);
  BusCommandOptions bus_options;
  add_bus_commands(app, bus_options, status);
  assert(std::ranges::all_of(app.get_subcommands({}), [](const CLI::App* command) {
    return std::ranges::find(subcommand_names, command->get_name()) != std::ranges::end(subcommand_names);
  }));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "diskgatectl: " << e.what() << "\n";
    return usage_error;
  }
  return status;
}
