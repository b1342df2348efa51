#include "os/proc_stat.h"

#include <charconv>
#include <limits>

namespace diskgate::os {
namespace {

// A whole field as a decimal number of type T; nullopt for anything else
// (sign, garbage, overflow).
template <typename T>
std::optional<T> number(std::string_view field) {
  T value{};
  if (field.empty() || field.front() == '-' || field.front() == '+') return std::nullopt;
  auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (error != std::errc() || end != field.data() + field.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<StatFields> parse_proc_stat(std::string_view line) {
  StatFields out;
  const auto open = line.find(" (");
  const auto close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2) return std::nullopt;
  auto pid = number<pid_t>(line.substr(0, open));
  if (!pid || *pid <= 0) return std::nullopt;
  out.pid = *pid;
  out.comm = std::string(line.substr(open + 2, close - open - 2));

  // Fields 3.. after ") ", separated by single spaces.
  std::string_view rest = line.substr(close + 1);
  if (rest.empty() || rest.front() != ' ') return std::nullopt;
  rest.remove_prefix(1);
  int field = 3;
  while (field <= 22) {
    auto space = rest.find_first_of(" \n");
    std::string_view value = rest.substr(0, space);
    if (value.empty()) return std::nullopt;
    switch (field) {
      case 3:
        if (value.size() != 1) return std::nullopt;
        out.state = value.front();
        break;
      case 4:
      case 5: {
        // 0 for processes without one (the kernel's own, and init's parent).
        auto id = number<pid_t>(value);
        if (!id) return std::nullopt;
        (field == 4 ? out.ppid : out.pgrp) = *id;
        break;
      }
      case 22: {
        auto ticks = number<std::uint64_t>(value);
        if (!ticks) return std::nullopt;
        out.start_time = *ticks;
        return out;
      }
      default:
        break;
    }
    if (space == std::string_view::npos || rest[space] != ' ') return std::nullopt;  // ends before field 22
    rest.remove_prefix(space + 1);
    ++field;
  }
  return std::nullopt;
}

}  // namespace diskgate::os
