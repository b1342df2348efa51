#include "probe/sysfs.h"

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

namespace diskgate::probe {

namespace fs = std::filesystem;

namespace {
std::optional<std::string> read_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

std::optional<std::uint64_t> read_number(const fs::path& file) {
  auto line = read_line(file);
  if (!line) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(line->data(), line->data() + line->size(), value);
  if (ec != std::errc{} || end != line->data() + line->size()) return std::nullopt;
  return value;
}
}  // namespace

std::optional<PartitionLocation> partition_location(unsigned major, unsigned minor,
                                                    const std::string& sysfs_root,
                                                    const std::string& dev_root) {
  std::error_code ec;
  fs::path device = fs::canonical(fs::path(sysfs_root) / "dev/block" / fmt::format("{}:{}", major, minor), ec);
  if (ec || !fs::exists(device / "partition", ec)) return std::nullopt;
  auto start = read_number(device / "start");
  auto size = read_number(device / "size");
  fs::path parent = device.parent_path();
  auto parent_dev = read_line(parent / "dev");
  if (!start || !size || !parent_dev) return std::nullopt;
  PartitionLocation location;
  location.start = *start;
  location.size = *size;
  location.parent_path = (fs::path(dev_root) / parent.filename()).string();
  unsigned pmajor = 0, pminor = 0;
  if (std::sscanf(parent_dev->c_str(), "%u:%u", &pmajor, &pminor) != 2) return std::nullopt;
  location.parent_major = pmajor;
  location.parent_minor = pminor;
  return location;
}

}  // namespace diskgate::probe
