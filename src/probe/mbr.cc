// DOS (MBR) partition tables, read the way libblkid 2.38 reads them: four
// primary entries, then logical partitions along each extended partition's
// chain of EBRs. A sector with 55 AA is not a table when its boot flags are
// odd, when it is GPT's protective MBR, or when it is really the boot sector
// of a FAT, NTFS or exFAT filesystem (exFAT: blkid 2.39+).
#include <array>
#include <bit>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "probe/fat_common.h"
#include "probe/probe.h"

namespace diskgate::probe {

namespace {

constexpr std::uint64_t kSector = 512;
constexpr std::size_t kTable = 446;  // four 16-byte entries
constexpr std::size_t kDiskId = 440;
// blkid gives up on a chain after 100 EBRs in a row that add no partition.
constexpr int kMaxEbrsWithoutData = 100;
// Our own bound on EBRs read per extended partition (blkid has none); the
// kernel stops at 256 partitions per disk anyway.
constexpr int kMaxEbrs = 256;

struct RawEntry {
  std::uint8_t boot, type;
  std::uint32_t start, size;
};

RawEntry raw_entry(Bytes sector, std::size_t i) {
  std::size_t at = kTable + 16 * i;
  return {u8(sector, at), u8(sector, at + 4), le32(sector, at + 8), le32(sector, at + 12)};
}

bool has_boot_signature(Bytes sector) {
  return sector.size() >= kSector && u8(sector, 510) == 0x55 && u8(sector, 511) == 0xAA;
}

bool is_extended(std::uint8_t type) { return type == 0x05 || type == 0x0F || type == 0x85; }

// blkid_probe_is_vfat(): the same checks the vfat prober makes.
bool is_fat_boot_sector(Bytes s) {
  FatGeometry geometry;
  return fat_boot_sector_problem(s, geometry).empty();
}

// blkid_probe_is_ntfs(): a sane NTFS BPB whose MFT records 0 and 3 say "FILE".
bool is_ntfs_boot_sector(Source& source, Bytes s) {
  if (!has_magic(s, 3, "NTFS    ")) return false;
  std::uint32_t sector_size = le16(s, 0x0B);
  if (sector_size < 256 || sector_size > 4096 || !std::has_single_bit(sector_size)) return false;
  std::uint8_t raw_spc = u8(s, 0x0D);
  std::uint32_t sectors_per_cluster;
  if (std::has_single_bit(raw_spc))
    sectors_per_cluster = raw_spc;
  else if (raw_spc >= 240 && raw_spc <= 249)
    sectors_per_cluster = 1u << (256 - raw_spc);
  else
    return false;
  if (sector_size * sectors_per_cluster > 2u * 1024 * 1024) return false;
  if (le16(s, 0x0E) || le16(s, 0x11) || le16(s, 0x13) || le16(s, 0x16) || le32(s, 0x20) || u8(s, 0x10))
    return false;

  auto clusters_per_record = static_cast<std::int8_t>(u8(s, 0x40));
  std::uint8_t raw_cpr = u8(s, 0x40);
  if (raw_cpr < 0xE1 || raw_cpr > 0xF7) {
    if (!std::has_single_bit(raw_cpr) || raw_cpr > 64) return false;
  }
  std::uint32_t record_size;
  if (clusters_per_record > 0) {
    record_size = static_cast<std::uint32_t>(clusters_per_record) * sectors_per_cluster * sector_size;
  } else {
    int shift = -clusters_per_record;
    if (shift >= 31) return false;
    record_size = 1u << shift;
  }
  std::uint64_t clusters = le64(s, 0x28) / sectors_per_cluster;
  if (le64(s, 0x30) > clusters || le64(s, 0x38) > clusters) return false;
  if (record_size < 4) return false;

  // Only "FILE" matters, but blkid wants each whole record on the device.
  std::uint64_t offset = le64(s, 0x30) * sector_size * sectors_per_cluster;
  for (int record : {0, 3}) {
    std::uint64_t at = offset + std::uint64_t{3} * record_size * (record == 3);
    if (at > source.size() || source.size() - at < record_size) return false;
    if (!has_magic(source.read(at, 4), 0, "FILE")) return false;
  }
  return true;
}

// blkid_probe_is_exfat() of blkid 2.39+: the boot region checks of the exFAT
// prober, boot checksum included (2.38.1 lacks this and reports PTTYPE=dos).
bool is_exfat_boot_sector(Source& source, Bytes s) {
  if (!has_magic(s, 3, "EXFAT   ")) return false;
  if (!has_magic(s, 0x1FE, "\x55\xAA") || !has_magic(s, 0, "\xEB\x76\x90")) return false;
  std::uint8_t sector_shift = u8(s, 108), cluster_shift = u8(s, 109), fats = u8(s, 110);
  if (!all_zero(slice(s, 11, 53))) return false;
  if (fats < 1 || fats > 2) return false;
  if (sector_shift < 9 || sector_shift > 12) return false;
  if (cluster_shift > 25 - sector_shift) return false;
  std::uint32_t fat_offset = le32(s, 80), fat_length = le32(s, 84), heap = le32(s, 88);
  std::uint32_t cluster_count = le32(s, 92), root = le32(s, 96);
  std::uint32_t fats_length = fat_length * fats;  // wraps, as in blkid
  if (fat_offset < 24 || fat_offset > heap - fats_length) return false;
  if (heap < fat_offset + fats_length || heap > (1u << 31)) return false;
  if (root < 2 || root > cluster_count + 1) return false;

  std::size_t sector_size = std::size_t{1} << sector_shift;
  Bytes region = source.read(0, 12 * sector_size);
  if (region.size() < 12 * sector_size) return false;
  std::uint32_t sum = exfat_boot_checksum(slice(region, 0, 11 * sector_size));
  for (std::size_t at = 11 * sector_size; at < 12 * sector_size; at += 4)
    if (le32(region, at) != sum) return false;
  return true;
}

class TableBuilder {
 public:
  TableBuilder(Source& source, const Debug& debug, std::uint32_t disk_id)
      : source_(source), debug_(debug), disk_id_(disk_id) {
    table_.type = "dos";
    if (disk_id_) table_.id = fmt::format("{:08x}", disk_id_);
  }

  void add(unsigned number, std::uint32_t start, std::uint32_t size, const RawEntry& raw) {
    PartitionEntry entry;
    entry.number = number;
    entry.start = start;
    entry.size = size;
    entry.type = fmt::format("0x{:x}", raw.type);  // blkid prints 0xc, not 0x0c
    if (disk_id_) entry.uuid = fmt::format("{:08x}-{:02x}", disk_id_, number);
    entry.flags = raw.boot;
    table_.entries.push_back(std::move(entry));
  }

  bool has_start(std::uint64_t start) const {
    for (const PartitionEntry& entry : table_.entries)
      if (entry.start == start) return true;
    return false;
  }

  // Logical partitions of the extended partition at ex_start; sector numbers
  // are 32-bit and wrap, as blkid's are.
  void walk_extended(std::uint32_t ex_start, std::uint32_t ex_size) {
    if (ex_start == 0) {
      if (debug_) debug_("dos: extended partition starts at sector 0, not followed");
      return;
    }
    std::uint32_t cur_start = ex_start, cur_size = ex_size;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> visited;
    int without_data = 0;
    while (true) {
      if (++without_data > kMaxEbrsWithoutData) return;
      // Reading an EBR again with the same size can add nothing new: a loop.
      for (const auto& seen : visited)
        if (seen == std::pair{cur_start, cur_size}) {
          if (debug_) debug_(fmt::format("dos: EBR chain loops back to sector {}", cur_start));
          return;
        }
      if (visited.size() >= kMaxEbrs) {
        if (debug_) debug_(fmt::format("dos: EBR chain longer than {}, rest ignored", kMaxEbrs));
        return;
      }
      visited.emplace_back(cur_start, cur_size);

      Bytes ebr = source_.read(std::uint64_t{cur_start} * kSector, kSector);
      if (!has_boot_signature(ebr)) return;

      for (std::size_t i = 0; i < 4; ++i) {
        RawEntry raw = raw_entry(ebr, i);
        std::uint32_t abs_start = cur_start + raw.start;
        if (raw.size == 0 || is_extended(raw.type)) continue;
        // The third and fourth entries count only when they lie inside.
        if (i >= 2 && (raw.start + raw.size > cur_size || abs_start < ex_start ||
                       abs_start + raw.size > ex_start + ex_size))
          continue;
        if (has_start(abs_start)) continue;  // seen before: a link looping back
        add(next_number_++, abs_start, raw.size, raw);
        without_data = 0;
      }

      // The first extended entry (not at offset 0) links to the next EBR.
      std::optional<RawEntry> link;
      for (std::size_t i = 0; i < 4 && !link; ++i) {
        RawEntry raw = raw_entry(ebr, i);
        if (raw.size != 0 && is_extended(raw.type) && raw.start != 0) link = raw;
      }
      if (!link) return;
      cur_start = ex_start + link->start;
      cur_size = link->size;
    }
  }

  PartitionTable take() { return std::move(table_); }

 private:
  Source& source_;
  const Debug& debug_;
  std::uint32_t disk_id_;
  PartitionTable table_;
  unsigned next_number_ = 5;  // logical partitions are numbered from 5
};

}  // namespace

std::optional<PartitionTable> probe_mbr(Source& source, const Debug& debug) {
  Bytes sector = source.read(0, kSector);
  if (!has_boot_signature(sector)) return std::nullopt;
  auto reject = [&](std::string_view why) -> std::optional<PartitionTable> {
    if (debug) debug(fmt::format("dos: {}", why));
    return std::nullopt;
  };

  if (has_magic(sector, 0, "\xC9\xC2\xD4\xC1")) return reject("AIX boot block, not a DOS table");
  std::array<RawEntry, 4> primary;
  for (std::size_t i = 0; i < 4; ++i) primary[i] = raw_entry(sector, i);
  for (std::size_t i = 0; i < 4; ++i)
    if (primary[i].boot != 0x00 && primary[i].boot != 0x80)
      return reject(fmt::format("entry {} has boot indicator 0x{:02x}", i + 1, primary[i].boot));
  for (const RawEntry& raw : primary)
    if (raw.type == 0xEE) return reject("protective MBR of a GPT disk (type 0xee)");
  if (is_fat_boot_sector(sector)) return reject("sector 0 is a FAT boot sector");
  if (is_ntfs_boot_sector(source, sector)) return reject("sector 0 is an NTFS boot sector");
  if (is_exfat_boot_sector(source, sector)) return reject("sector 0 is an exFAT boot sector");

  TableBuilder builder(source, debug, le32(sector, kDiskId));
  // Empty slots (size 0) keep their number; the type is not looked at.
  for (std::size_t i = 0; i < 4; ++i)
    if (primary[i].size != 0) builder.add(i + 1, primary[i].start, primary[i].size, primary[i]);
  for (const RawEntry& raw : primary)
    if (raw.size != 0 && is_extended(raw.type)) builder.walk_extended(raw.start, raw.size);
  return builder.take();
}

}  // namespace diskgate::probe
