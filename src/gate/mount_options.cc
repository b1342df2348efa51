// mount(8)'s option words, as util-linux's libmount maps them onto mount(2).
#include "gate/mount_options.h"

#include <sys/mount.h>

#include <array>
#include <vector>

namespace diskgate::gate {
namespace {

constexpr unsigned long atime_modes = MS_NOATIME | MS_RELATIME | MS_STRICTATIME;

struct FlagWord {
  std::string_view word;
  unsigned long clear;  // applied first, so that set wins inside one word
  unsigned long set;
};

// Later words override earlier ones. The atime words are one choice:
// noatime/relatime/strictatime exclude each other. (mount(8) sets both bits
// and the kernel picks: "noatime,relatime" gives noatime there, here relatime;
// "noatime,strictatime" gives strictatime in both.) atime and norelatime only
// drop their opposite, as in libmount. "defaults" changes nothing, as in libmount:
// the defaults are the zero flags, and "ro,defaults" stays read-only there too.
constexpr std::array<FlagWord, 26> flag_words{{
    {"ro", 0, MS_RDONLY},
    {"rw", MS_RDONLY, 0},
    {"noatime", atime_modes, MS_NOATIME},
    {"atime", MS_NOATIME, 0},
    {"relatime", atime_modes, MS_RELATIME},
    {"norelatime", MS_RELATIME, 0},
    {"strictatime", atime_modes, MS_STRICTATIME},
    {"nostrictatime", MS_STRICTATIME, 0},
    {"nodiratime", 0, MS_NODIRATIME},
    {"diratime", MS_NODIRATIME, 0},
    {"nodev", 0, MS_NODEV},
    {"dev", MS_NODEV, 0},
    {"nosuid", 0, MS_NOSUID},
    {"suid", MS_NOSUID, 0},
    {"noexec", 0, MS_NOEXEC},
    {"exec", MS_NOEXEC, 0},
    {"sync", 0, MS_SYNCHRONOUS},
    {"async", MS_SYNCHRONOUS, 0},
    {"dirsync", 0, MS_DIRSYNC},
    {"lazytime", 0, MS_LAZYTIME},
    {"nolazytime", MS_LAZYTIME, 0},
    {"nosymfollow", 0, MS_NOSYMFOLLOW},
    {"symfollow", MS_NOSYMFOLLOW, 0},
    {"iversion", 0, MS_I_VERSION},
    {"noiversion", MS_I_VERSION, 0},
    {"defaults", 0, 0},
}};

// Words that change what kind of mount(2) this is, rather than how the
// filesystem is mounted.
constexpr std::array<std::string_view, 16> operation_words{
    "remount", "bind",      "rbind",  "move",     "shared",  "private",  "slave",  "unbindable",
    "rshared", "rprivate",  "rslave", "runbindable", "make-shared", "make-private", "make-slave",
    "make-unbindable"};

// Words that only mean something to mount(8) or fstab, never to the kernel.
constexpr std::array<std::string_view, 10> userspace_words{
    "user", "users", "nouser", "owner", "group", "auto", "noauto", "nofail", "_netdev", "loop"};

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string quoted(std::string_view option) {
  return "'" + std::string(option) + "'";
}

}  // namespace

std::variant<MountOptions, MountOptionsError> parse_mount_options(std::string_view text) {
  MountOptions result;
  if (text.empty()) return result;  // no options at all
  if (text.find('\0') != std::string_view::npos) return MountOptionsError{"mount options contain a NUL byte"};

  // Split at commas outside double quotes, as libmount does for values such
  // as context="system_u:object_r:tmp_t:s0:c127,c456".
  std::vector<std::string_view> items;
  std::size_t start = 0;
  bool in_quotes = false;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] == '"') in_quotes = !in_quotes;
    if (i == text.size() || (text[i] == ',' && !in_quotes)) {
      items.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  if (in_quotes) return MountOptionsError{"unbalanced double quote in mount options " + quoted(text)};

  std::string data;
  for (std::size_t index = 0; index < items.size(); ++index) {
    std::string_view item = items[index];
    if (item.empty())
      return MountOptionsError{"empty mount option (item " + std::to_string(index + 1) + " of " + quoted(text) + ")"};
    if (is_space(item.front()) || is_space(item.back()))
      return MountOptionsError{"mount option " + quoted(item) + " has leading or trailing white space"};

    bool matched = false;
    for (const auto& flag : flag_words) {
      if (item == flag.word) {
        result.flags = (result.flags & ~flag.clear) | flag.set;
        matched = true;
        break;
      }
    }
    if (matched) continue;

    for (auto word : operation_words)
      if (item == word)
        return MountOptionsError{"mount option " + quoted(item) + " is not allowed: the gate only makes new mounts"};
    for (auto word : userspace_words)
      if (item == word)
        return MountOptionsError{"mount option " + quoted(item) +
                                 " is for fstab and mount(8) only and means nothing to the kernel"};
    if (item.starts_with("x-") || item.starts_with("comment=") || item.starts_with("loop="))
      return MountOptionsError{"mount option " + quoted(item) +
                               " is for fstab and mount(8) only and means nothing to the kernel"};

    if (!data.empty()) data += ',';
    data += item;
  }
  result.data = std::move(data);
  return result;
}

std::string join_data(std::initializer_list<std::string_view> pieces) {
  std::string out;
  for (auto piece : pieces) {
    if (piece.empty()) continue;
    if (!out.empty()) out += ',';
    out += piece;
  }
  return out;
}

}  // namespace diskgate::gate
