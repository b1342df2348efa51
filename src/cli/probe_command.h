// `diskgatectl probe`: blkid's output from our own probers.
#pragma once

#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "probe/format.h"

namespace diskgate::cli {

struct ProbeOptions {
  bool low_level = false;  // -p
  probe::OutputFormat format = probe::OutputFormat::full;
  std::vector<std::string> tags;  // -s
  bool debug = false;
  std::vector<std::string> paths;
};

// Probes every path (an error on one does not stop the others) and returns
// blkid's exit status: 0 something found, 2 nothing, 8 ambivalent.
int run_probe(const ProbeOptions& options, std::ostream& out, std::ostream& err);

// `diskgatectl probe ...` in its plain forms, parsed without building the
// CLI11 parser (which costs one probe about as much as the probing: README,
// bench/probe). args are the words after "probe". Accepts only: -p or
// --low-level and --debug (each at most once), -o/--output and one of
// full|export|value|udev|json as the next word (once), -s/--match-tag and
// the next word (repeatable), and at least one path; a value or path must
// not start with '-' nor be one of `reserved` (the subcommand names).
// Anything else (help, --bus, --output=..., bundled flags, "--", errors)
// gives nullopt, and CLI11 parses the command line as it always does; for
// what it accepts, both give the same options.
std::optional<ProbeOptions> parse_plain_probe(std::span<const char* const> args,
                                              std::span<const std::string_view> reserved);

}  // namespace diskgate::cli
