#include "udev/kernel_uevent.h"

#include <array>
#include <charconv>

namespace diskgate::udev {
namespace {

bool control_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

bool valid_key(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

bool no_control_bytes(std::string_view text) {
  for (char c : text)
    if (control_byte(c)) return false;
  return true;
}

// Plain decimal digits only: from_chars alone would accept nothing before
// them, but we also refuse "", "+1", " 1" and "1 ".
template <typename T>
std::optional<T> decimal(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  for (char c : text)
    if (c < '0' || c > '9') return std::nullopt;
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The fields we read, each at most once.
enum Field { action, devpath, subsystem, devtype, devname, major, minor, seqnum, media_change, field_count };
constexpr std::array<std::string_view, field_count> field_names = {
    "ACTION", "DEVPATH", "SUBSYSTEM", "DEVTYPE", "DEVNAME", "MAJOR", "MINOR", "SEQNUM", "DISK_MEDIA_CHANGE"};

std::optional<KernelUevent> refuse(std::string* why, std::string reason) {
  if (why) *why = std::move(reason);
  return std::nullopt;
}

}  // namespace

bool safe_path(std::string_view path, bool absolute) {
  if (path.empty() || path.size() > 4096) return false;
  if ((path.front() == '/') != absolute) return false;
  if (!no_control_bytes(path)) return false;
  std::string_view rest = absolute ? path.substr(1) : path;
  for (;;) {
    auto slash = rest.find('/');
    std::string_view component = rest.substr(0, slash);
    if (component.empty() || component == "." || component == "..") return false;
    if (slash == std::string_view::npos) return true;
    rest.remove_prefix(slash + 1);
  }
}

std::optional<KernelUevent> parse_kernel_uevent(std::string_view message, std::string* why) {
  if (message.empty()) return refuse(why, "empty message");
  if (message.size() > max_message_bytes) return refuse(why, "longer than " + std::to_string(max_message_bytes) + " bytes");
  if (message.starts_with(std::string_view("libudev\0", 8))) return refuse(why, "udevd's format (libudev header), not the kernel's");
  if (message.back() != '\0') return refuse(why, "last field not NUL-terminated");

  // Header: ACTION@DEVPATH.
  std::string_view header = message.substr(0, message.find('\0'));
  auto at = header.find('@');
  if (at == std::string_view::npos) return refuse(why, "header has no '@'");
  std::string_view header_action = header.substr(0, at);
  std::string_view header_devpath = header.substr(at + 1);
  if (header_action.empty() || header_devpath.empty()) return refuse(why, "header has an empty ACTION or DEVPATH");

  std::array<std::optional<std::string_view>, field_count> values{};
  std::string_view rest = message.substr(header.size() + 1);
  while (!rest.empty()) {
    std::string_view entry = rest.substr(0, rest.find('\0'));  // the message ends in NUL: always found
    rest.remove_prefix(entry.size() + 1);
    if (entry.empty()) return refuse(why, "empty field");
    auto equals = entry.find('=');
    if (equals == std::string_view::npos) return refuse(why, "field without '='");
    std::string_view key = entry.substr(0, equals), value = entry.substr(equals + 1);
    if (!valid_key(key)) return refuse(why, "bad key");
    if (!no_control_bytes(value)) return refuse(why, "control byte in the value of " + std::string(key));
    for (int f = 0; f < field_count; ++f) {
      if (key != field_names[f]) continue;
      if (values[f]) return refuse(why, "duplicate key " + std::string(key));
      values[f] = value;
    }
  }

  KernelUevent out;
  if (!values[action] || values[action]->empty()) return refuse(why, "no ACTION");
  if (*values[action] != header_action) return refuse(why, "ACTION differs from the header's");
  if (!values[devpath]) return refuse(why, "no DEVPATH");
  if (*values[devpath] != header_devpath) return refuse(why, "DEVPATH differs from the header's");
  if (!safe_path(*values[devpath], true)) return refuse(why, "unsafe DEVPATH");
  if (!values[subsystem] || values[subsystem]->empty()) return refuse(why, "no SUBSYSTEM");
  if (!values[seqnum]) return refuse(why, "no SEQNUM");
  auto seq = decimal<std::uint64_t>(*values[seqnum]);
  if (!seq || *seq == 0) return refuse(why, "SEQNUM not a positive 64-bit decimal");
  if (values[devname] && !safe_path(*values[devname], false)) return refuse(why, "unsafe DEVNAME");
  if (values[major].has_value() != values[minor].has_value()) return refuse(why, "MAJOR without MINOR or the reverse");
  if (values[major]) {
    auto maj = decimal<std::uint64_t>(*values[major]);
    auto min = decimal<std::uint64_t>(*values[minor]);
    if (!maj || !min) return refuse(why, "MAJOR or MINOR not a decimal");
    if (*maj > max_major || *min > max_minor) return refuse(why, "MAJOR or MINOR out of range");
    out.has_devnum = true;
    out.major = static_cast<unsigned>(*maj);
    out.minor = static_cast<unsigned>(*min);
  }
  out.action = *values[action];
  out.devpath = *values[devpath];
  out.subsystem = *values[subsystem];
  out.seqnum = *seq;
  if (values[devtype]) out.devtype = *values[devtype];
  if (values[devname]) out.devname = *values[devname];
  out.disk_media_change = values[media_change] && *values[media_change] == "1";
  return out;
}

std::optional<KernelUevent> parse_kernel_uevent(std::span<const std::byte> message, std::string* why) {
  return parse_kernel_uevent(std::string_view(reinterpret_cast<const char*>(message.data()), message.size()), why);
}

std::string format_kernel_uevent(const KernelUevent& event) {
  std::string out;
  auto field = [&](std::string_view key, std::string_view value) {
    out.append(key).append("=").append(value).push_back('\0');
  };
  out.append(event.action).append("@").append(event.devpath).push_back('\0');
  field("ACTION", event.action);
  field("DEVPATH", event.devpath);
  field("SUBSYSTEM", event.subsystem);
  if (!event.devtype.empty()) field("DEVTYPE", event.devtype);
  if (!event.devname.empty()) field("DEVNAME", event.devname);
  if (event.has_devnum) {
    field("MAJOR", std::to_string(event.major));
    field("MINOR", std::to_string(event.minor));
  }
  if (event.disk_media_change) field("DISK_MEDIA_CHANGE", "1");
  field("SEQNUM", std::to_string(event.seqnum));
  return out;
}

}  // namespace diskgate::udev
