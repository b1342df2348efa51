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
  for (const PartitionTableProber& prober : partition_table_probers()) {
    std::optional<PartitionTable> table;
    try {
      table = prober.probe(parent, debug);
    } catch (const OutOfBounds& e) {
      if (debug) debug(fmt::format("{} on {}: {}", prober.name, location->parent_path, e.what()));
    }
    if (!table) continue;
    report.entry = find_entry(*table, location->start, location->size);
    report.entry_scheme = table->type;
    report.entry_disk = fmt::format("{}:{}", location->parent_major, location->parent_minor);
    return;
  }
}
}  // namespace

Report probe_path(const std::string& path, const Debug& debug, const std::string& sysfs_root) {
  FileSource source(path);
  Report report = probe_source(source, debug);
  add_partition_entry(report, source, debug, sysfs_root);
  return report;
}

}  // namespace diskgate::probe
