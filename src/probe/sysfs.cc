#include "probe/sysfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace diskgate::probe {

// Plain POSIX rather than <fstream> and <filesystem>: this runs in the
// daemon for every device, and each part of libstdc++ it touches is resident
// memory (bench/hotplug).
std::optional<std::string> read_first_line(const std::string& path) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::nullopt;
  char buffer[256];  // sysfs attributes read here are a few bytes
  ssize_t n;
  do n = ::read(fd, buffer, sizeof buffer);
  while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  std::string_view text(buffer, static_cast<std::size_t>(n));
  return std::string(text.substr(0, text.find('\n')));
}

std::optional<std::uint64_t> read_sysfs_number(const std::string& path) {
  auto line = read_first_line(path);
  if (!line) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(line->data(), line->data() + line->size(), value);
  if (ec != std::errc{} || end != line->data() + line->size()) return std::nullopt;
  return value;
}

std::optional<PartitionLocation> partition_location(unsigned major, unsigned minor,
                                                    const std::string& sysfs_root,
                                                    const std::string& dev_root) {
  std::string link = fmt::format("{}/dev/block/{}:{}", sysfs_root, major, minor);
  // Most devices probed are not partitions: one lookup through the link
  // says so, before realpath's walk of every component.
  if (::access((link + "/partition").c_str(), F_OK) != 0) return std::nullopt;
  char* resolved = ::realpath(link.c_str(), nullptr);
  if (!resolved) return std::nullopt;
  std::string device(resolved);
  std::free(resolved);
  auto start = read_sysfs_number(device + "/start");
  auto size = read_sysfs_number(device + "/size");
  std::string parent = device.substr(0, device.rfind('/'));
  auto parent_dev = read_first_line(parent + "/dev");
  if (!start || !size || !parent_dev) return std::nullopt;
  PartitionLocation location;
  location.start = *start;
  location.size = *size;
  location.parent_path = dev_root + "/" + parent.substr(parent.rfind('/') + 1);
  unsigned pmajor = 0, pminor = 0;
  if (std::sscanf(parent_dev->c_str(), "%u:%u", &pmajor, &pminor) != 2) return std::nullopt;
  location.parent_major = pmajor;
  location.parent_minor = pminor;
  return location;
}

}  // namespace diskgate::probe
