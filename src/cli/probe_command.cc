#include "cli/probe_command.h"

#include <nlohmann/json.hpp>
#include <algorithm>
#include <ostream>
#include <utility>

#include <fmt/format.h>

#include "probe/probe_path.h"

namespace diskgate::cli {

namespace {

using probe::OutputFormat;

// blkid -o udev's line for an ambivalent device.
std::string udev_ambivalent(const probe::Report& report) {
  std::string value;
  for (const probe::Superblock& sb : report.superblocks) {
    if (!value.empty()) value += ' ';
    value += probe::encode_string(sb.usage) + ':' + probe::encode_string(sb.type);
    for (const probe::Tag& tag : sb.tags)
      if (tag.name == "VERSION") value += ':' + probe::encode_string(tag.value);
  }
  return "ID_FS_AMBIVALENT=" + value + "\n";
}

std::string types_of(const probe::Report& report) {
  std::string types;
  for (const probe::Superblock& sb : report.superblocks) types += (types.empty() ? "" : ", ") + sb.type;
  return types;
}

nlohmann::ordered_json json_of(const std::string& path, const probe::Report* report, const probe::Tags& tags,
                               const std::string& error) {
  nlohmann::ordered_json object;
  object["path"] = path;
  if (!error.empty()) {
    object["status"] = "error";
    object["error"] = error;
  } else if (report->ambivalent()) {
    object["status"] = "ambivalent";
    object["types"] = nlohmann::json::array();
    for (const probe::Superblock& sb : report->superblocks) object["types"].push_back(sb.type);
  } else {
    object["status"] = tags.empty() ? "nothing" : "found";
  }
  object["tags"] = nlohmann::ordered_json::object();
  for (const probe::Tag& tag : tags) object["tags"][tag.name] = tag.value;
  return object;
}

}  // namespace

int run_probe(const ProbeOptions& options, std::ostream& out, std::ostream& err) {
  bool any_found = false, any_ambivalent = false, first_device = true;
  for (const std::string& path : options.paths) {
    probe::Debug debug;
    if (options.debug) debug = [&](std::string_view line) { err << path << ": " << line << '\n'; };
    probe::Report report;
    std::string error;
    try {
      report = probe::probe_path(path, debug);
    } catch (const probe::IoError& e) {
      error = e.what();  // already names the path
    }
    if (!error.empty()) {
      err << "diskgatectl: " << error << '\n';
      if (options.format == OutputFormat::json)
        out << json_of(path, nullptr, {}, error).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << '\n';
      continue;
    }

    probe::Tags tags = probe::report_tags(report, options.low_level);
    if (report.ambivalent()) {
      // Only `blkid -p` calls it ambivalent; plain blkid finds nothing.
      any_ambivalent = any_ambivalent || options.low_level;
      err << fmt::format("diskgatectl: {}: ambivalent result (several filesystems on the device: {})\n", path,
                         types_of(report));
      if (options.low_level && options.format == OutputFormat::udev) out << udev_ambivalent(report);
    } else if (!tags.empty()) {
      any_found = true;
    }

    if (options.format == OutputFormat::json) {
      out << json_of(path, &report, probe::select_tags(tags, options.tags), "")
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
          << '\n';
      continue;
    }
    out << probe::format_device(path, tags, options.tags, options.format, options.low_level, first_device);
    if (probe::counts_as_printed(tags, options.tags, options.low_level)) first_device = false;
  }
  if (any_ambivalent) return 8;
  return any_found ? 0 : 2;
}

std::optional<ProbeOptions> parse_plain_probe(std::span<const char* const> args,
                                              std::span<const std::string_view> reserved) {
  ProbeOptions options;
  bool seen_p = false, seen_o = false, seen_debug = false;
  auto plain_word = [&](std::string_view word) {
    if (word.empty() || word[0] == '-') return false;
    return std::find(reserved.begin(), reserved.end(), word) == reserved.end();
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "-p" || arg == "--low-level") {
      if (std::exchange(seen_p, true)) return std::nullopt;
      options.low_level = true;
    } else if (arg == "--debug") {
      if (std::exchange(seen_debug, true)) return std::nullopt;
      options.debug = true;
    } else if (arg == "-o" || arg == "--output") {
      if (std::exchange(seen_o, true) || i + 1 == args.size()) return std::nullopt;
      std::string_view name = args[++i];
      if (name == "full") options.format = OutputFormat::full;
      else if (name == "export") options.format = OutputFormat::export_;
      else if (name == "value") options.format = OutputFormat::value;
      else if (name == "udev") options.format = OutputFormat::udev;
      else if (name == "json") options.format = OutputFormat::json;
      else return std::nullopt;
    } else if (arg == "-s" || arg == "--match-tag") {
      if (i + 1 == args.size() || !plain_word(args[i + 1])) return std::nullopt;
      options.tags.emplace_back(args[++i]);
    } else if (plain_word(arg)) {
      options.paths.emplace_back(arg);
    } else {
      return std::nullopt;
    }
  }
  if (options.paths.empty()) return std::nullopt;
  return options;
}

}  // namespace diskgate::cli
