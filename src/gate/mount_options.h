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

// Parses "ro,noatime,compress=zstd". Known flag words (ro, rw, noatime,
// atime, relatime, norelatime, strictatime, nodiratime, nodev, dev, nosuid,
// suid, noexec, exec, sync, async, dirsync, lazytime, nolazytime, defaults)
// become flags; the rest is passed as data. Empty items, and options that
// make no sense for a gate (remount, bind, rbind, move, and user/users/owner
// / noauto / auto which are fstab-only), are errors.
std::variant<MountOptions, MountOptionsError> parse_mount_options(std::string_view text);

// Joins data pieces with commas, skipping empty ones.
std::string join_data(std::initializer_list<std::string_view> pieces);

}  // namespace diskgate::gate
