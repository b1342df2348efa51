// One line per event to stderr, with sd-daemon <N> priority prefixes when
// stderr is the journal (JOURNAL_STREAM names our stderr).
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace diskgate {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// Parses "error", "warning", "notice", "info" or "debug".
bool parse_level(std::string_view text, Level& level);
void set_log_level(Level level);
void log_line(Level level, std::string_view text);

template <typename... Args>
void log(Level level, fmt::format_string<Args...> format, Args&&... args) {
  log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace diskgate
