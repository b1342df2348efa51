// exFAT: boot sector checks, the boot-region checksum (as blkid 2.39+), and
// the volume label from the root directory.
#include <algorithm>

#include <fmt/format.h>

#include "probe/fat_common.h"
#include "probe/probe.h"

namespace diskgate::probe {

namespace {

constexpr std::uint32_t kFirstCluster = 2;
constexpr std::uint32_t kLastCluster = 0x0FFFFFF6;
constexpr std::size_t kEntrySize = 32;
constexpr std::uint8_t kEndOfDirectory = 0x00;
constexpr std::uint8_t kLabelEntry = 0x83;
constexpr std::size_t kMaxLabelUnits = 11;
// The root directory scan stops after this many bytes and clusters. blkid
// allows 256 MiB; a label lives in the first few entries (mkfs and Windows
// put it first), so 1 MiB keeps reads bounded without losing real labels.
constexpr std::uint64_t kMaxDirectoryBytes = 1u << 20;
// A chain of tiny clusters (or a loop) ends here: 512 clusters, each one
// directory read and one FAT read.
constexpr unsigned kMaxClusters = 512;

struct Geometry {
  unsigned sector_shift;
  unsigned cluster_shift;  // sectors per cluster, log2
  std::uint32_t fat_offset;
  std::uint32_t heap_offset;
  std::uint32_t root_cluster;

  std::uint64_t sector_size() const { return std::uint64_t{1} << sector_shift; }
  std::uint64_t cluster_size() const { return sector_size() << cluster_shift; }
  std::uint64_t cluster_offset(std::uint32_t cluster) const {
    // At most (2^32 + 2^32 << 25) << 12: no overflow in 64 bits.
    return (std::uint64_t{heap_offset} + (std::uint64_t{cluster - kFirstCluster} << cluster_shift))
           << sector_shift;
  }
  std::uint64_t fat_entry_offset(std::uint32_t cluster) const {
    return (std::uint64_t{fat_offset} << sector_shift) + std::uint64_t{cluster} * 4;
  }
};

// Returns why the boot sector is not exFAT, or "" when it passes.
std::string boot_sector_problem(Bytes sb) {
  if (le16(sb, 510) != 0xAA55) return "no 55 AA boot signature";
  if (!has_magic(sb, 0, "\xEB\x76\x90")) return "bad jump instruction";
  if (!all_zero(slice(sb, 11, 53))) return "MustBeZero bytes 11-63 are not zero";
  unsigned fats = u8(sb, 110);
  if (fats < 1 || fats > 2) return fmt::format("NumberOfFats {} not 1 or 2", fats);
  unsigned sector_shift = u8(sb, 108);
  if (sector_shift < 9 || sector_shift > 12)
    return fmt::format("BytesPerSectorShift {} outside 9..12", sector_shift);
  unsigned cluster_shift = u8(sb, 109);
  if (cluster_shift > 25 - sector_shift)
    return fmt::format("SectorsPerClusterShift {} above {}", cluster_shift, 25 - sector_shift);
  std::uint64_t fat_offset = le32(sb, 80), fat_length = le32(sb, 84), heap_offset = le32(sb, 88);
  if (fat_offset < 24) return fmt::format("FatOffset {} below 24", fat_offset);
  if (fat_offset + fat_length * fats > heap_offset)
    return fmt::format("FatOffset {} + FatLength {} x {} passes ClusterHeapOffset {}", fat_offset,
                       fat_length, fats, heap_offset);
  std::uint64_t cluster_count = le32(sb, 92), root = le32(sb, 96);
  if (root < kFirstCluster || root > cluster_count + 1)
    return fmt::format("FirstClusterOfRootDirectory {} outside 2..{}", root, cluster_count + 1);
  return "";
}

// The label entry's text, or nullopt when the root directory has none.
// Reads each cluster piece by piece up to the label or the end mark; the
// FAT only when the chain goes on.
std::optional<std::string> find_label(Source& source, const Geometry& g) {
  std::uint32_t cluster = g.root_cluster;
  std::uint64_t budget = kMaxDirectoryBytes;
  for (unsigned walked = 0; walked < kMaxClusters && budget > 0; ++walked) {
    std::uint64_t want = std::min(g.cluster_size(), budget);
    budget -= want;
    const std::uint64_t base = g.cluster_offset(cluster);
    std::uint64_t done = 0;
    for (unsigned index = 0; done < want; ++index) {
      const std::uint64_t piece = directory_piece(base + done, index, want - done);
      Bytes dir = source.read(base + done, static_cast<std::size_t>(piece));
      for (std::size_t at = 0; at + kEntrySize <= dir.size(); at += kEntrySize) {
        std::uint8_t type = u8(dir, at);
        if (type == kEndOfDirectory) return std::nullopt;
        if (type == kLabelEntry) {
          std::size_t units = std::min<std::size_t>(u8(dir, at + 1), kMaxLabelUnits);
          return utf16le_to_utf8(slice(dir, at + 2, 2 * kMaxLabelUnits), units);
        }
      }
      if (dir.size() < piece) return std::nullopt;  // the device ends inside this cluster
      done += piece;
    }
    // The scan was cut short inside this cluster.
    if (want < g.cluster_size()) return std::nullopt;
    Bytes next = source.read(g.fat_entry_offset(cluster), 4);
    if (next.size() < 4) return std::nullopt;
    cluster = le32(next, 0);
    if (cluster < kFirstCluster || cluster > kLastCluster) return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Superblock> probe_exfat(Source& source, const Debug& debug) {
  // Twelve 512-byte sectors at once: the boot region of the common sector size.
  Bytes boot = source.read(0, 12 * 512);
  if (!has_magic(boot, 3, "EXFAT   ")) return std::nullopt;
  auto reject = [&](const std::string& why) -> std::optional<Superblock> {
    if (debug) debug(fmt::format("exfat: {}", why));
    return std::nullopt;
  };
  if (boot.size() < 512) return reject("device ends inside the boot sector");
  Bytes sb = slice(boot, 0, 512);
  if (std::string problem = boot_sector_problem(sb); !problem.empty()) return reject(problem);

  Geometry g{u8(sb, 108), u8(sb, 109), le32(sb, 80), le32(sb, 88), le32(sb, 96)};

  // Sectors 0..10 are summed; sector 11 repeats the sum in every u32.
  std::size_t sector = static_cast<std::size_t>(g.sector_size());
  if (sector > 512) boot = source.read(0, 12 * sector);
  if (boot.size() < 12 * sector) return reject("device ends inside the boot region");
  std::uint32_t sum = exfat_boot_checksum(slice(boot, 0, 11 * sector));
  for (std::size_t at = 11 * sector; at < 12 * sector; at += 4) {
    if (le32(boot, at) != sum)
      return reject(fmt::format("boot region checksum {:08x} does not match {:08x} at byte {}", sum,
                                le32(boot, at), at));
  }

  Superblock found;
  found.type = "exfat";
  if (auto raw = find_label(source, g)) {
    // blkid trims trailing white space from the converted label.
    if (std::string label = label_text(as_bytes(*raw)); !label.empty())
      found.tags.push_back({"LABEL", label});
  }
  Bytes serial = slice(sb, 100, 4);
  if (!all_zero(serial)) found.tags.push_back({"UUID", serial_text(serial)});
  found.tags.push_back({"VERSION", fmt::format("{}.{}", u8(sb, 105), u8(sb, 104))});
  found.tags.push_back({"BLOCK_SIZE", std::to_string(g.sector_size())});
  return found;
}

}  // namespace diskgate::probe
