// Turns a Report into the lines blkid prints, byte for byte.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "probe/probe.h"

namespace diskgate::probe {

enum class OutputFormat { full, export_, value, udev, json };

// The tags plain `blkid` (low_level false) or `blkid -p` (low_level true)
// reports for a device, in blkid's order.
Tags report_tags(const Report& report, bool low_level);

// Keeps only the tags named in `wanted` (all when empty), in their order.
Tags select_tags(const Tags& tags, const std::vector<std::string>& wanted);

// blkid's escapes: safe_print (M- and ^ notation plus backslashes),
// blkid_encode_string (\xNN) and blkid_safe_string (udev's ID_FS_LABEL).
std::string safe_print(std::string_view value, std::string_view escape);
std::string encode_string(std::string_view value);
std::string safe_string(std::string_view value);

// Whether a device with these tags ends blkid's "first device" state, which
// decides the blank line before the next one.
bool counts_as_printed(const Tags& tags, const std::vector<std::string>& wanted, bool low_level);

// Prints one device as blkid would: `tags` as report_tags gave them, `wanted`
// the -s selection (empty: all), `low_level` for -p's layout, `first_device`
// while no earlier device counted as printed.
std::string format_device(std::string_view path, const Tags& tags, const std::vector<std::string>& wanted,
                          OutputFormat format, bool low_level, bool first_device);

}  // namespace diskgate::probe
