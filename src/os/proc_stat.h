// parse_proc_stat: pure, so that /proc/PID/stat's traps (a comm with spaces
// and parentheses, truncated reads) are tested without a kernel.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace diskgate::os {

// The fields of /proc/PID/stat that the platform uses (proc(5) numbering).
struct StatFields {
  pid_t pid = 0;                // 1
  std::string comm;             // 2, without the parentheses
  char state = '?';             // 3: R, S, D, Z, T, ...
  pid_t ppid = 0;               // 4
  pid_t pgrp = 0;               // 5
  std::uint64_t start_time = 0; // 22: clock ticks after boot
  bool operator==(const StatFields&) const = default;
};

// Parses one /proc/PID/stat line. comm may hold anything (spaces, ")",
// newlines) but is at most 16 bytes, and the kernel closes it with the last
// ')' of the line, so the fields after the LAST ')' are the numbered ones.
// nullopt when the line is truncated before field 22 or a field used is not
// a number that fits.
std::optional<StatFields> parse_proc_stat(std::string_view line);

}  // namespace diskgate::os
