// mount(8)-style option lists turned into mount(2)'s flags and data.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace diskgate::gate {

struct MountOptions {
  unsigned long flags = 0;  // MS_RDONLY, MS_NOATIME, ...
  std::string data;         // everything else, comma-separated, in order
  bool operator==(const MountOptions&) const = default;
};

struct MountOptionsError {
  std::string message;  // names the option and what is wrong
};

// Parses "ro,noatime,compress=zstd". Known flag words (ro/rw, the atime
// family, [no]diratime, [no]dev, [no]suid, [no]exec, sync/async, dirsync,
// [no]lazytime, [no]symfollow, [no]iversion, defaults; the table is in
// mount_options.cc) become flags; the rest is passed as data. Empty items,
// words that change the kind of mount (remount, bind, move, propagation
// flags) and fstab/mount(8)-only words (user, noauto, x-*, ...) are errors.
std::variant<MountOptions, MountOptionsError> parse_mount_options(std::string_view text);

// Joins data pieces with commas, skipping empty ones.
std::string join_data(std::initializer_list<std::string_view> pieces);

}  // namespace diskgate::gate
