#include "daemon/watchdog.h"

#include <charconv>
#include <cstdint>

#include "daemon/notify.h"

namespace diskgate::daemon {

namespace {

template <typename Number>
std::optional<Number> parse_decimal(std::string_view text) {
  Number value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void feed(gate::Loop& loop, std::chrono::microseconds period) {
  notify("WATCHDOG=1");
  loop.after(period, [&loop, period] { feed(loop, period); });
}

}  // namespace

std::optional<std::chrono::microseconds> watchdog_interval(std::optional<std::string_view> usec,
                                                           std::optional<std::string_view> pid, pid_t self) {
  if (!usec) return std::nullopt;
  if (pid) {
    auto target = parse_decimal<pid_t>(*pid);
    if (!target || *target != self) return std::nullopt;
  }
  auto microseconds = parse_decimal<std::uint64_t>(*usec);
  // Below 2 µs half the interval is no interval; above a year is nonsense.
  constexpr std::uint64_t year = 365ull * 24 * 3600 * 1000 * 1000;
  if (!microseconds || *microseconds < 2 || *microseconds > year) return std::nullopt;
  return std::chrono::microseconds(*microseconds);
}

void keep_watchdog_fed(gate::Loop& loop, std::chrono::microseconds interval) { feed(loop, interval / 2); }

}  // namespace diskgate::daemon
