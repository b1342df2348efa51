#include "common/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace diskgate {

namespace {
Level threshold = Level::info;

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  return ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}
}  // namespace

bool parse_level(std::string_view text, Level& level) {
  static constexpr std::pair<std::string_view, Level> names[] = {
      {"error", Level::error}, {"warning", Level::warning}, {"notice", Level::notice},
      {"info", Level::info},   {"debug", Level::debug}};
  for (auto [name, value] : names)
    if (name == text) {
      level = value;
      return true;
    }
  return false;
}

void set_log_level(Level level) { threshold = level; }

void log_line(Level level, std::string_view text) {
  if (static_cast<int>(level) > static_cast<int>(threshold)) return;
  static const bool journal = stderr_is_journal();
  std::string line = journal ? fmt::format("<{}>{}\n", static_cast<int>(level), text) : fmt::format("diskgated: {}\n", text);
  // One write per line so lines from a crash-looping child never interleave mid-line.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace diskgate
