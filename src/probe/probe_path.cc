#include "probe/probe_path.h"

#include <fmt/format.h>

#include "probe/sysfs.h"

namespace diskgate::probe {

namespace {
void add_partition_entry(Report& report, const FileSource& device, const Debug& debug,
                         const std::string& sysfs_root) {
  if (!device.is_block_device()) return;
  auto location = partition_location(device.major(), device.minor(), sysfs_root);
  if (!location) return;
  FileSource parent(location->parent_path);
  auto table = probe_partition_table(parent, debug);
  if (!table) return;
  report.entry = find_entry(*table, location->start, location->size);
  report.entry_scheme = table->type;
  report.entry_disk = fmt::format("{}:{}", location->parent_major, location->parent_minor);
}
}  // namespace

Report probe_path(const std::string& path, const Debug& debug, const std::string& sysfs_root) {
  FileSource source(path);
  Report report = probe_source(source, debug);
  add_partition_entry(report, source, debug, sysfs_root);
  return report;
}

}  // namespace diskgate::probe
