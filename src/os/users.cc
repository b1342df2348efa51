#include "os/users.h"

#include <charconv>
#include <cstdint>
#include <optional>
#include <vector>

#include <fmt/format.h>

namespace diskgate::os {
namespace {

constexpr std::uint64_t invalid_id = 4294967295u;  // (uid_t)-1

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// A decimal id below invalid_id; nullopt for anything else.
std::optional<std::uint32_t> parse_id(std::string_view s) {
  if (!all_digits(s)) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (error != std::errc() || end != s.data() + s.size() || value >= invalid_id) return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

// A name useradd/groupadd could have made, loosely: no ':' or ',' (the
// files' separators), no whitespace or control characters, not an option
// or a NIS "+"/"-" entry.
bool plausible_name(std::string_view s) {
  if (s.empty() || s.front() == '-' || s.front() == '+') return false;
  for (unsigned char c : s)
    if (c <= ' ' || c == 0x7f || c == ':' || c == ',' || c == '/') return false;
  return true;
}

std::vector<std::string_view> split(std::string_view line, char separator) {
  std::vector<std::string_view> fields;
  for (;;) {
    auto at = line.find(separator);
    fields.push_back(line.substr(0, at));
    if (at == std::string_view::npos) return fields;
    line.remove_prefix(at + 1);
  }
}

// Calls `visit(fields)` for each line of `text` that has `count` fields;
// stops when it returns true. Comments and NIS "+"/"-" lines are skipped.
template <typename Visit>
void each_entry(std::string_view text, std::size_t count, Visit visit) {
  while (!text.empty()) {
    auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#' || line.front() == '+' || line.front() == '-') continue;
    auto fields = split(line, ':');
    if (fields.size() != count || fields[0].empty()) continue;
    if (visit(fields)) return;
  }
}

struct PasswdEntry {
  std::uint32_t uid, gid;
};

// passwd: name:password:uid:gid:gecos:home:shell. A line whose ids do not
// parse is malformed and skipped.
std::optional<PasswdEntry> find_user(std::string_view passwd_text, std::string_view name,
                                     std::optional<std::uint32_t> uid) {
  std::optional<PasswdEntry> found;
  each_entry(passwd_text, 7, [&](const std::vector<std::string_view>& f) {
    auto entry_uid = parse_id(f[2]);
    auto entry_gid = parse_id(f[3]);
    if (!entry_uid || !entry_gid) return false;
    if (uid ? *entry_uid != *uid : f[0] != name) return false;
    found = PasswdEntry{*entry_uid, *entry_gid};
    return true;
  });
  return found;
}

// group: name:password:gid:members.
std::optional<std::uint32_t> find_group(std::string_view group_text, std::string_view name) {
  std::optional<std::uint32_t> found;
  each_entry(group_text, 4, [&](const std::vector<std::string_view>& f) {
    auto gid = parse_id(f[2]);
    if (!gid || f[0] != name) return false;
    found = *gid;
    return true;
  });
  return found;
}

}  // namespace

std::variant<Credentials, std::string> resolve_user(std::string_view spec, std::string_view passwd_text,
                                                    std::string_view group_text) {
  auto error = [&](std::string_view problem) { return fmt::format("--user {}: {}", spec, problem); };
  if (spec.empty()) return fmt::format("--user: empty, expected USER[:GROUP]");

  const auto colon = spec.find(':');
  std::string_view user = spec.substr(0, colon);
  std::optional<std::string_view> group;
  if (colon != std::string_view::npos) {
    group = spec.substr(colon + 1);
    if (group->find(':') != std::string_view::npos) return error("more than one ':', expected USER[:GROUP]");
    if (group->empty()) return error("no group after ':'");
  }
  if (user.empty()) return error("no user before ':'");

  Credentials credentials;
  std::optional<std::uint32_t> primary_gid;
  if (all_digits(user)) {
    auto uid = parse_id(user);
    if (!uid) return error(fmt::format("user id {} is out of range (at most {})", user, invalid_id - 1));
    credentials.uid = *uid;
    // Listed or not, a numeric uid is taken as it is; passwd only gives the
    // default group.
    if (auto entry = find_user(passwd_text, {}, uid)) primary_gid = entry->gid;
    else primary_gid = *uid;
  } else {
    if (!plausible_name(user)) return error(fmt::format("'{}' is neither a user name nor a numeric id", user));
    auto entry = find_user(passwd_text, user, std::nullopt);
    if (!entry) return error(fmt::format("no such user in /etc/passwd"));
    credentials.uid = entry->uid;
    primary_gid = entry->gid;
  }

  if (!group) {
    credentials.gid = *primary_gid;
  } else if (all_digits(*group)) {
    auto gid = parse_id(*group);
    if (!gid) return error(fmt::format("group id {} is out of range (at most {})", *group, invalid_id - 1));
    credentials.gid = *gid;
  } else {
    if (!plausible_name(*group)) return error(fmt::format("'{}' is neither a group name nor a numeric id", *group));
    auto gid = find_group(group_text, *group);
    if (!gid) return error(fmt::format("no such group {} in /etc/group", *group));
    credentials.gid = *gid;
  }
  return credentials;
}

}  // namespace diskgate::os
