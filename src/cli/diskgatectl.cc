// diskgatectl: the command-line client. `probe` works without the daemon.
#include <CLI/CLI.hpp>
#include <iostream>
#include <map>

#include "cli/probe_command.h"

namespace {

using diskgate::probe::OutputFormat;

constexpr int usage_error = 4;  // blkid's exit status for bad usage

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
  probe->add_option("-s,--match-tag", options.tags, "Show only this tag (repeatable)");
  probe->add_flag("--debug", options.debug, "Say why each prober rejected the device");
  probe->add_option("path", options.paths, "Block devices or image files")->required();
  probe->callback([&] { status = diskgate::cli::run_probe(options, std::cout, std::cerr); });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"diskgatectl: identify disks and control diskgated"};
  app.require_subcommand(1);
  int status = 0;
  diskgate::cli::ProbeOptions probe_options;
  add_probe_command(app, probe_options, status);
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
