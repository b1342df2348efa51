// libFuzzer target for os::parse_mountinfo and os::lists_filesystem.
// Invariants: neither throws; parse_mountinfo returns at most one entry per
// line, each with a non-empty root, target and fstype; every entry, written
// back as a mountinfo line with the kernel's escapes, parses to itself; an
// fstype is listed by a /proc/filesystems line naming it. lists_filesystem
// also runs on the input split at its first NUL (fstype, then the text) and
// must agree with a plain line-by-line check.
// Keep crashing inputs under tests/fuzz/regressions/mountinfo-fuzz/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "require.h"
#include "os/platform.h"

namespace {
using diskgate::fuzz::require;

// fs/proc_namespace.c's mangle(), plus NUL-free: ' ', '\t', '\n', '\\'.
std::string mangle(std::string_view field) {
  std::string out;
  for (char c : field) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\')
      out += fmt::format("\\{:03o}", static_cast<unsigned char>(c));
    else
      out += c;
  }
  return out;
}

bool listed(std::string_view text, std::string_view fstype) {
  if (fstype.empty()) return false;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    std::size_t tab = line.rfind('\t');
    if (tab != std::string_view::npos && line.substr(tab + 1) == fstype) return true;
    start = end + 1;
  }
  return false;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diskgate::os;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto entries = parse_mountinfo(text);
  std::size_t lines = text.empty() ? 0 : 1;
  for (char c : text) lines += c == '\n';
  require(entries.size() <= lines);
  for (const MountEntry& entry : entries) {
    require(!entry.root.empty() && !entry.target.empty() && !entry.fstype.empty());
    std::string line = fmt::format("36 35 {}:{} {} {} {} shared:1 - {} {} {}\n", entry.major, entry.minor,
                                   mangle(entry.root), mangle(entry.target), mangle(entry.options),
                                   mangle(entry.fstype), mangle(entry.source), mangle(entry.super_options));
    auto again = parse_mountinfo(line);
    require(again.size() == 1 && again[0] == entry);
    if (entry.fstype.find_first_of("\t\n") == std::string::npos) {
      require(lists_filesystem("nodev\tsysfs\n\t" + entry.fstype + "\n", entry.fstype));
      require(lists_filesystem("nodev\t" + entry.fstype, entry.fstype));
    }
  }
  std::string_view view(text);
  std::size_t nul = view.find('\0');
  std::string_view fstype = view.substr(0, nul);
  std::string_view rest = nul == std::string_view::npos ? std::string_view() : view.substr(nul + 1);
  require(lists_filesystem(rest, fstype) == listed(rest, fstype));
  require(lists_filesystem(view, view) == listed(view, view));
  return 0;
}
