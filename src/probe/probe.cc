// The driver: the table of probers and the loop that runs them.
#include "probe/probe.h"

#include <array>

#include <fmt/format.h>

namespace diskgate::probe {

namespace {
// blkid's order: vfat before the ext family; exFAT and btrfs later.
constexpr std::array superblock_table{
    SuperblockProber{"vfat", probe_vfat},
    SuperblockProber{"ext", probe_ext},
    SuperblockProber{"exfat", probe_exfat},
    SuperblockProber{"btrfs", probe_btrfs},
};
// GPT first: a GPT disk also carries a (protective) MBR.
constexpr std::array partition_table_table{
    PartitionTableProber{"gpt", probe_gpt},
    PartitionTableProber{"dos", probe_mbr},
};

// Runs one prober; a field out of bounds is a mismatch, an IoError escapes.
template <typename Prober>
auto run_prober(const Prober& prober, Source& source, const Debug& debug) -> decltype(prober.probe(source, debug)) {
  try {
    return prober.probe(source, debug);
  } catch (const OutOfBounds& e) {
    if (debug) debug(fmt::format("{}: {}", prober.name, e.what()));
    return std::nullopt;
  }
}
}  // namespace

const std::string& tag_value(const Tags& tags, std::string_view name) {
  static const std::string none;
  for (const Tag& tag : tags)
    if (tag.name == name) return tag.value;
  return none;
}

std::span<const SuperblockProber> superblock_probers() { return superblock_table; }
std::span<const PartitionTableProber> partition_table_probers() { return partition_table_table; }

std::optional<PartitionTable> probe_partition_table(Source& source, const Debug& debug) {
  for (const PartitionTableProber& prober : partition_table_probers())
    if (auto found = run_prober(prober, source, debug)) return found;
  return std::nullopt;
}

Report probe_source(Source& source, const Debug& debug) {
  Report report;
  for (const SuperblockProber& prober : superblock_probers()) {
    if (auto found = run_prober(prober, source, debug)) report.superblocks.push_back(std::move(*found));
  }
  report.table = probe_partition_table(source, debug);
  return report;
}

namespace {
bool is_extended(const PartitionEntry& entry) {
  return entry.type == "0x5" || entry.type == "0xf" || entry.type == "0x85";
}
}  // namespace

std::optional<PartitionEntry> find_entry(const PartitionTable& table, std::uint64_t start,
                                         std::uint64_t size) {
  for (const PartitionEntry& entry : table.entries) {
    if (entry.start != start) continue;
    // Linux shows an extended partition as 1 KiB (2 sectors), whatever its
    // size in the table; blkid accepts any size up to 1024 sectors there.
    if (entry.size == size || (is_extended(entry) && size <= 1024)) return entry;
  }
  return std::nullopt;
}

}  // namespace diskgate::probe
