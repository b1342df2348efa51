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

// Prints one device as blkid would. `first_device` matters for the blank
// lines blkid puts between devices; `low_level` selects `-p`'s layout.
std::string format_device(std::string_view path, const Tags& tags, OutputFormat format,
                          bool low_level, bool first_device);

}  // namespace diskgate::probe
