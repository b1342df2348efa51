// parse_mountinfo: pure, so that the mount table's quirks (escapes, optional
// fields, odd lines) are tested without a kernel.
#include <charconv>
#include <string_view>

#include "os/platform.h"

namespace diskgate::os {
namespace {

bool is_octal(char c) {
  return c >= '0' && c <= '7';
}

// The kernel writes ' ', '\t', '\n' and '\\' as "\ooo" (mangle() in
// fs/proc_namespace.c). Any "\ooo" is decoded; a backslash not followed by
// three octal digits (or one beyond a byte) is kept as it is.
std::string unescape(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) && is_octal(field[i + 2]) &&
        is_octal(field[i + 3])) {
      int value = (field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0');
      if (value <= 0xff) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

bool parse_unsigned(std::string_view text, unsigned& value) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
  return ec == std::errc() && end == text.data() + text.size();
}

// Fields are separated by exactly one space; an empty field (two spaces in a
// row) is kept, so that an empty source does not shift the ones after it.
std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (;;) {
    std::size_t space = line.find(' ', start);
    if (space == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, space - start));
    start = space + 1;
  }
}

std::optional<MountEntry> parse_line(std::string_view line) {
  // id parent major:minor root target options [optional...] - fstype source super
  auto fields = split_fields(line);
  if (fields.size() < 10) return std::nullopt;
  unsigned id = 0, parent = 0;
  if (!parse_unsigned(fields[0], id) || !parse_unsigned(fields[1], parent)) return std::nullopt;

  MountEntry entry;
  std::string_view dev = fields[2];
  std::size_t colon = dev.find(':');
  if (colon == std::string_view::npos || !parse_unsigned(dev.substr(0, colon), entry.major) ||
      !parse_unsigned(dev.substr(colon + 1), entry.minor))
    return std::nullopt;
  if (fields[3].empty() || fields[4].empty()) return std::nullopt;

  std::size_t separator = 6;
  while (separator < fields.size() && fields[separator] != "-") {
    // Optional fields are "tag[:value]" (shared:1, master:2, unbindable).
    if (fields[separator].empty()) return std::nullopt;
    ++separator;
  }
  if (separator + 4 != fields.size()) return std::nullopt;
  if (fields[separator + 1].empty()) return std::nullopt;  // no fstype

  entry.root = unescape(fields[3]);
  entry.target = unescape(fields[4]);
  entry.options = unescape(fields[5]);
  entry.fstype = unescape(fields[separator + 1]);
  entry.source = unescape(fields[separator + 2]);
  entry.super_options = unescape(fields[separator + 3]);
  return entry;
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(const std::string& text) {
  std::vector<MountEntry> entries;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    if (auto entry = parse_line(line)) entries.push_back(std::move(*entry));
  }
  return entries;
}

bool lists_filesystem(std::string_view text, std::string_view fstype) {
  if (fstype.empty()) return false;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    // "[nodev]\tNAME": the name is what follows the last tab.
    std::size_t tab = line.rfind('\t');
    if (tab != std::string_view::npos && line.substr(tab + 1) == fstype) return true;
  }
  return false;
}

}  // namespace diskgate::os
