// FAT12, FAT16 and FAT32, the way libblkid's vfat.c sees them: a boot
// sector with one of several magics, a BPB sane enough for the kernel, the
// FAT type from the cluster count, and the label from the root directory.
// The arithmetic deliberately wraps in 32 bits where blkid's does, so that
// hostile BPBs are accepted or rejected exactly as blkid does.
#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "probe/fat_common.h"
#include "probe/probe.h"

namespace diskgate::probe {

namespace {

constexpr std::uint32_t fat12_max = 0xFF4;
constexpr std::uint32_t fat16_max = 0xFFF4;
// blkid's loop counter starts at 100 and is pre-decremented: 99 clusters.
constexpr int fat32_max_root_clusters = 99;
// blkid reads directory entries one by one on devices up to this size
// ("tiny", floppies), so there a partly readable root directory still counts.
constexpr std::uint64_t tiny_device = 1440 * 1024;
constexpr std::size_t dir_entry_size = 32;
constexpr std::string_view no_name = "NO NAME    ";

using Label = std::array<std::byte, 11>;

struct DirScan {
  std::optional<Label> label;
  bool ended = false;  // met the end-of-directory entry (name[0] == 0)
};

// Looks for the volume label among `entries` directory entries at `offset`,
// skipping deleted, LFN and cluster-owning entries as blkid does. Reads
// piece by piece and stops at the label or the end-of-directory entry.
DirScan scan_directory(Source& source, std::uint64_t offset, std::uint64_t entries) {
  DirScan scan;
  const std::uint64_t size = source.size();
  const bool tiny = size <= tiny_device;
  // On larger devices blkid reads the directory in one piece and gives up on
  // it when that read does not fit the device: check that instead of reading.
  if (!tiny && (entries == 0 || offset > size || entries > (size - offset) / dir_entry_size)) return scan;

  const std::uint64_t total = entries * dir_entry_size;  // entries < 2^32: no overflow
  std::uint64_t done = 0;
  for (unsigned index = 0; done < total; ++index) {
    const std::uint64_t piece = directory_piece(offset + done, index, total - done);
    Bytes bytes = source.read(offset + done, static_cast<std::size_t>(piece));
    std::uint64_t got = bytes.size() / dir_entry_size;
    for (std::uint64_t i = 0; i < got; ++i) {
      Bytes entry = slice(bytes, i * dir_entry_size, dir_entry_size);
      std::uint8_t first = u8(entry, 0);
      std::uint8_t attr = u8(entry, 11);
      if (first == 0x00) {
        scan.ended = true;
        return scan;
      }
      if (first == 0xE5 || le16(entry, 20) != 0 || le16(entry, 26) != 0 || (attr & 0x3F) == 0x0F) continue;
      if ((attr & 0x18) == 0x08) {
        Label label;
        std::copy_n(entry.begin(), label.size(), label.begin());
        if (first == 0x05) label[0] = std::byte{0xE5};  // 0x05 stands for a leading 0xE5
        scan.label = label;
        return scan;
      }
    }
    if (bytes.size() < piece) return scan;  // the device ends here (tiny devices only)
    done += piece;
  }
  return scan;
}

// BitLocker volumes carry a FAT-like BPB; blkid rules them out of vfat.
bool is_bitlocker(Source& source, Bytes boot) {
  static constexpr std::string_view vista = "\xEB\x52\x90-FVE-FS-";
  static constexpr std::string_view win7 = "\xEB\x58\x90-FVE-FS-";
  static constexpr std::string_view togo = "\xEB\x58\x90MSWIN4.1";
  if (has_magic(boot, 0, vista)) return true;
  std::uint64_t metadata;
  if (has_magic(boot, 0, win7))
    metadata = le64(boot, 176);
  else if (has_magic(boot, 0, togo))
    metadata = le64(boot, 440);
  else
    return false;
  // The FVE metadata offset is 64-byte aligned (blkid 2.39+ checks that;
  // it also spares a read at a random offset on Windows FAT32 sticks).
  if (metadata == 0 || metadata % 64 != 0) return false;
  Bytes fve = source.read(metadata, 12);
  return fve.size() == 12 && has_magic(fve, 0, "-FVE-FS-");
}

}  // namespace

std::optional<Superblock> probe_vfat(Source& source, const Debug& debug) {
  // blkid looks for the magics in the first 1 KiB, and probes no
  // filesystem at all on a device of 1 KiB or less.
  Bytes head = source.read(0, 4096);
  if (head.size() <= 1024) return std::nullopt;
  Bytes bs = slice(head, 0, 512);
  auto reject = [&](std::string_view why) -> std::optional<Superblock> {
    if (debug) debug(fmt::format("vfat: {}", why));
    return std::nullopt;
  };
  FatGeometry g;
  if (std::string problem = fat_boot_sector_problem(bs, g); !problem.empty()) {
    if (problem == "no FAT magic") return std::nullopt;  // not even a candidate
    return reject(problem);
  }
  const auto [cluster_size, reserved, fats, sector_size, fat_length16, fat_length32, fat_size, dir_entries,
              clusters] = g;
  if (is_bitlocker(source, bs)) return reject("BitLocker volume");

  Superblock result;
  result.type = "vfat";
  std::optional<Label> root_label;
  std::optional<Bytes> boot_label;
  std::optional<Bytes> serial;
  const char* version = nullptr;

  if (fat_length16 != 0) {
    result.tags.push_back({"SEC_TYPE", "msdos"});
    std::uint32_t root_start = (reserved + fat_size) * static_cast<std::uint32_t>(sector_size);
    root_label = scan_directory(source, root_start, dir_entries).label;
    std::uint8_t signature = u8(bs, 0x26);
    if (signature == 0x29) boot_label = slice(bs, 0x2B, 11);
    if (signature == 0x28 || signature == 0x29) serial = slice(bs, 0x27, 4);
    if (clusters < fat12_max)
      version = "FAT12";
    else if (clusters < fat16_max)
      version = "FAT16";
  } else if (fat_length32 != 0) {
    version = "FAT32";
    // FSInfo must carry its signatures, or zeros. blkid checks this after the
    // label search; checking first gives the same answer with fewer reads.
    if (std::uint16_t fsinfo_sector = le16(bs, 0x30); fsinfo_sector != 0) {
      std::uint64_t at = std::uint64_t{fsinfo_sector} * sector_size;
      constexpr std::size_t fsinfo_size = 500;
      Bytes fsinfo = at + fsinfo_size <= head.size() ? slice(head, at, fsinfo_size) : source.read(at, fsinfo_size);
      if (fsinfo.size() < fsinfo_size) return reject("FSInfo sector beyond the device");
      if (!has_magic(fsinfo, 0, "RRaA") && !has_magic(fsinfo, 0, "RRdA") && !all_zero(slice(fsinfo, 0, 4)))
        return reject("FSInfo sector has a bad lead signature");
      if (!has_magic(fsinfo, 484, "rrAa") && !all_zero(slice(fsinfo, 484, 4)))
        return reject("FSInfo sector has a bad structure signature");
    }

    // Walk the root directory's cluster chain.
    const std::uint32_t cluster_bytes = static_cast<std::uint32_t>(cluster_size) * sector_size;
    const std::uint32_t data_start = reserved + fat_size;
    const auto fat_entries = static_cast<std::uint32_t>(std::uint64_t{fat_length32} * sector_size / 4);
    std::vector<std::uint32_t> visited;
    std::uint32_t next = le32(bs, 0x2C);
    for (int loop = 0; loop < fat32_max_root_clusters && next != 0 && next < fat_entries; ++loop) {
      // A cluster seen before gives what it gave before: blkid would just go
      // round until its loop limit, finding nothing new.
      if (std::find(visited.begin(), visited.end(), next) != visited.end()) break;
      visited.push_back(next);
      std::uint32_t sector = data_start + (next - 2) * cluster_size;
      DirScan scan = scan_directory(source, std::uint64_t{sector} * sector_size, cluster_bytes / dir_entry_size);
      if (scan.label) {
        root_label = scan.label;
        break;
      }
      // Unlike blkid, stop at the end-of-directory entry: whatever follows
      // it is free space by definition, and this spares reading the FAT in
      // the common unlabelled case.
      if (scan.ended) break;
      // blkid reads a whole cluster's worth at the FAT entry; no fit, no walk.
      std::uint64_t entry_at = std::uint64_t{reserved} * sector_size + std::uint64_t{next} * 4;
      if (entry_at > source.size() || cluster_bytes > source.size() - entry_at) break;
      Bytes entry = source.read(entry_at, 4);
      if (entry.size() < 4) break;
      next = le32(entry, 0) & 0x0FFFFFFF;
    }
    if (u8(bs, 0x42) == 0x29) boot_label = slice(bs, 0x47, 11);
    serial = slice(bs, 0x43, 4);
  }

  if (boot_label && !has_magic(*boot_label, 0, no_name)) {
    if (std::string text = label_text(*boot_label); !text.empty())
      result.tags.push_back({"LABEL_FATBOOT", std::move(text)});
  }
  if (root_label) {
    if (std::string text = label_text(*root_label); !text.empty()) result.tags.push_back({"LABEL", std::move(text)});
  }
  if (serial && !all_zero(*serial)) result.tags.push_back({"UUID", serial_text(*serial)});
  if (version) result.tags.push_back({"VERSION", version});
  result.tags.push_back({"BLOCK_SIZE", std::to_string(sector_size)});
  return result;
}

}  // namespace diskgate::probe
