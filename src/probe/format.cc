// blkid 2.38.1's output formats, reproduced byte for byte: which tags each
// mode shows, in what order, how values are escaped and where blank lines go.
#include "probe/format.h"

#include <algorithm>

#include <fmt/format.h>

namespace diskgate::probe {

namespace {

void add(Tags& tags, std::string name, std::string value) {
  tags.push_back({std::move(name), std::move(value)});
}

// The partitions chain's tags for a partition device, as `blkid -p` sets them.
void add_entry_tags(Tags& tags, const Report& report) {
  const PartitionEntry& entry = *report.entry;
  add(tags, "PART_ENTRY_SCHEME", report.entry_scheme);
  if (!entry.name.empty()) add(tags, "PART_ENTRY_NAME", entry.name);
  if (!entry.uuid.empty()) add(tags, "PART_ENTRY_UUID", entry.uuid);
  add(tags, "PART_ENTRY_TYPE", entry.type);
  if (entry.flags != 0) add(tags, "PART_ENTRY_FLAGS", fmt::format("{:#x}", entry.flags));
  add(tags, "PART_ENTRY_NUMBER", std::to_string(entry.number));
  add(tags, "PART_ENTRY_OFFSET", std::to_string(entry.start));
  add(tags, "PART_ENTRY_SIZE", std::to_string(entry.size));
  add(tags, "PART_ENTRY_DISK", report.entry_disk);
}

// The UTF-8 sequence length starting at `s`, or 0 when it is not a valid,
// encodable character other than ASCII (libblkid's utf8_encoded_valid_unichar).
std::size_t valid_utf8_length(std::string_view s) {
  auto c = static_cast<unsigned char>(s[0]);
  std::size_t length;
  char32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    length = 2, cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    length = 3, cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    length = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    auto cc = static_cast<unsigned char>(s[i]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  std::size_t shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  if (shortest != length) return 0;
  if (cp > 0x10FFFF || (cp & 0xFFFFF800) == 0xD800 || (cp >= 0xFDD0 && cp <= 0xFDEF) ||
      (cp & 0xFFFF) == 0xFFFF)
    return 0;
  return length;
}

bool whitelisted(char c, std::string_view extra) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         std::string_view("#+-.:=@_").find(c) != std::string_view::npos ||
         extra.find(c) != std::string_view::npos;
}

// Buffer sizes of blkid's udev output, which cut long values.
constexpr std::size_t udev_encode_buffer = 265;
constexpr std::size_t udev_safe_buffer = 256;

bool is_space(char c) { return std::string_view(" \t\n\v\f\r").find(c) != std::string_view::npos; }

// blkid -o udev: how each tag becomes udev properties.
std::string udev_lines(const Tag& tag) {
  const std::string& name = tag.name;
  const std::string& value = tag.value;
  if (name == "TYPE" || name == "VERSION") return fmt::format("ID_FS_{}={}\n", name, encode_string(value));
  if (name == "UUID" || name == "UUID_SUB" || name.starts_with("LABEL"))
    return fmt::format("ID_FS_{0}={1}\nID_FS_{0}_ENC={2}\n", name, safe_string(value), encode_string(value));
  if (name == "PTUUID") return fmt::format("ID_PART_TABLE_UUID={}\n", value);
  if (name == "PTTYPE") return fmt::format("ID_PART_TABLE_TYPE={}\n", value);
  if (name == "PART_ENTRY_NAME" || name == "PART_ENTRY_TYPE")
    return fmt::format("ID_{}={}\n", name, encode_string(value));
  if (name.starts_with("PART_ENTRY_")) return fmt::format("ID_{}={}\n", name, value);
  return fmt::format("ID_FS_{}={}\n", name, value);
}

}  // namespace

Tags report_tags(const Report& report, bool low_level) {
  Tags tags;
  if (report.ambivalent()) return tags;
  if (!report.superblocks.empty()) {
    const Superblock& sb = report.superblocks.front();
    for (const Tag& tag : sb.tags)
      if (low_level || tag.name != "VERSION") tags.push_back(tag);
    add(tags, "TYPE", sb.type);
    if (low_level) add(tags, "USAGE", sb.usage);
  }
  if (report.table) {
    if (!report.table->id.empty()) add(tags, "PTUUID", report.table->id);
    add(tags, "PTTYPE", report.table->type);
  }
  if (report.entry) {
    if (low_level) {
      add_entry_tags(tags, report);
    } else {
      // The blkid cache keeps only these two of the entry's tags, renamed.
      if (!report.entry->name.empty()) add(tags, "PARTLABEL", report.entry->name);
      if (!report.entry->uuid.empty()) add(tags, "PARTUUID", report.entry->uuid);
    }
  }
  return tags;
}

Tags select_tags(const Tags& tags, const std::vector<std::string>& wanted) {
  if (wanted.empty()) return tags;
  Tags selected;
  for (const Tag& tag : tags)
    if (std::find(wanted.begin(), wanted.end(), tag.name) != wanted.end()) selected.push_back(tag);
  return selected;
}

std::string safe_print(std::string_view value, std::string_view escape) {
  std::string out;
  // blkid prints a value only up to its first NUL.
  value = value.substr(0, value.find('\0'));
  for (char raw : value) {
    auto c = static_cast<unsigned char>(raw);
    if (c >= 128) {
      out += "M-";
      c -= 128;
    }
    if (c < 32 || c == 0x7F) {
      // ^X notation is never escaped, even when X is a backslash (0x1C).
      out += '^';
      out += static_cast<char>(c ^ 0x40);
      continue;
    }
    if (escape.find(static_cast<char>(c)) != std::string_view::npos) out += '\\';
    out += static_cast<char>(c);
  }
  return out;
}

std::string encode_string(std::string_view value) {
  value = value.substr(0, value.find('\0'));
  std::string out;
  for (std::size_t i = 0; i < value.size();) {
    std::size_t length = valid_utf8_length(value.substr(i));
    if (length > 1) {
      out.append(value.substr(i, length));
      i += length;
    } else {
      char c = value[i++];
      if (c == '\\' || !whitelisted(c, ""))
        out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
      else
        out += c;
    }
    // blkid encodes into a 265-byte buffer and stops once it is nearly full.
    if (out.size() + 3 >= udev_encode_buffer) break;
  }
  return out;
}

std::string safe_string(std::string_view value) {
  value = value.substr(0, value.find('\0'));
  // blkid's buffer holds 255 bytes; a longer value gives an empty string.
  if (value.size() >= udev_safe_buffer) return {};
  // Trim, then turn each run of white space into one '_'.
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  std::string squeezed;
  for (std::size_t i = 0; i < value.size();) {
    if (is_space(value[i])) {
      while (i < value.size() && is_space(value[i])) ++i;
      squeezed += '_';
    } else {
      squeezed += value[i++];
    }
  }
  // Then bytes that are not ASCII and not part of valid UTF-8 become '_'.
  for (std::size_t i = 0; i < squeezed.size();) {
    std::size_t length = valid_utf8_length(std::string_view(squeezed).substr(i));
    if (length >= 1) {
      i += length;
    } else {
      squeezed[i++] = '_';
    }
  }
  return squeezed;
}

bool counts_as_printed(const Tags& tags, const std::vector<std::string>& wanted, bool low_level) {
  return low_level ? !tags.empty() : !select_tags(tags, wanted).empty();
}

std::string format_device(std::string_view path, const Tags& tags, const std::vector<std::string>& wanted,
                          OutputFormat format, bool low_level, bool first_device) {
  // `blkid -p` decides blank lines and the line end on all of a device's
  // tags, before `-s` filters them; plain blkid on what is left after `-s`.
  if (!counts_as_printed(tags, wanted, low_level)) return {};
  Tags shown = select_tags(tags, wanted);
  std::string out;
  if (!first_device && (format == OutputFormat::export_ || format == OutputFormat::udev)) out += '\n';
  switch (format) {
    case OutputFormat::value:
      for (const Tag& tag : shown) out += tag.value.substr(0, tag.value.find('\0')) + '\n';
      break;
    case OutputFormat::udev:
      for (const Tag& tag : shown) out += udev_lines(tag);
      break;
    case OutputFormat::export_:
      if (!shown.empty()) out += fmt::format("DEVNAME={}\n", path);
      for (const Tag& tag : shown) out += fmt::format("{}={}\n", tag.name, safe_print(tag.value, " \\\"'$`<>"));
      break;
    case OutputFormat::full:
      if (!shown.empty()) out += fmt::format("{}:", path);
      for (const Tag& tag : shown) out += fmt::format(" {}=\"{}\"", tag.name, safe_print(tag.value, "\"\\"));
      out += '\n';
      break;
    case OutputFormat::json:
      break;  // the CLI prints JSON with a JSON library
  }
  return out;
}

}  // namespace diskgate::probe
