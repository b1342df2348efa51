#include "probe/fat_common.h"

#include <array>
#include <bit>

#include <fmt/format.h>

namespace diskgate::probe {

namespace {
constexpr std::uint32_t fat12_max = 0xFF4;
constexpr std::uint32_t fat16_max = 0xFFF4;
constexpr std::uint32_t fat32_max = 0x0FFFFFF6;

struct Magic {
  std::size_t offset;
  std::string_view text;
};
// In blkid's order; the first that matches decides whether the weak-magic
// checks apply.
constexpr std::array<Magic, 9> magics{{
    {0x52, "MSWIN"},
    {0x52, "FAT32   "},
    {0x36, "MSDOS"},
    {0x36, "FAT16   "},
    {0x36, "FAT12   "},
    {0x36, "FAT     "},
    {0, "\xEB"},
    {0, "\xE9"},
    {0x1FE, "\x55\xAA"},
}};
}  // namespace

std::string fat_boot_sector_problem(Bytes bs, FatGeometry& g) {
  const Magic* magic = nullptr;
  for (const Magic& m : magics) {
    if (has_magic(bs, m.offset, m.text)) {
      magic = &m;
      break;
    }
  }
  if (!magic) return "no FAT magic";
  if (magic->text.size() <= 2) {
    // A jump instruction or 55 AA alone is weak evidence: every MBR has them.
    if (!has_magic(bs, 0x1FE, "\x55\xAA")) return "weak magic without 55 AA signature";
    // OS/2 puts FAT-like pseudo boot sectors on JFS and HPFS volumes.
    if (has_magic(bs, 0x36, "JFS     ") || has_magic(bs, 0x36, "HPFS    ")) return "JFS/HPFS pseudo boot sector";
  }

  g.cluster_size = u8(bs, 0x0D);
  g.reserved = le16(bs, 0x0E);
  g.fats = u8(bs, 0x10);
  const std::uint8_t media = u8(bs, 0x15);
  g.sector_size = le16(bs, 0x0B);
  g.fat_length16 = le16(bs, 0x16);
  g.fat_length32 = le32(bs, 0x24);
  // exFAT (bytes 11..63 zero) and NTFS (no FATs, no reserved sectors) stop here.
  if (g.fats == 0) return "no FATs";
  if (g.reserved == 0) return "no reserved sectors";
  if (!(media >= 0xF8 || media == 0xF0)) return fmt::format("media byte {:#04x}", media);
  if (!std::has_single_bit(g.cluster_size)) return fmt::format("{} sectors per cluster", g.cluster_size);
  if (!std::has_single_bit(g.sector_size) || g.sector_size < 512 || g.sector_size > 4096)
    return fmt::format("{} bytes per sector", g.sector_size);

  // All 32-bit, wrapping like blkid's.
  g.dir_entries = le16(bs, 0x11);
  std::uint32_t sectors = le16(bs, 0x13);
  if (sectors == 0) sectors = le32(bs, 0x20);
  const std::uint32_t fat_length = g.fat_length16 != 0 ? g.fat_length16 : g.fat_length32;
  g.fat_size = fat_length * g.fats;
  const std::uint32_t dir_size = (g.dir_entries * 32 + (g.sector_size - 1u)) / g.sector_size;
  g.clusters = (sectors - (static_cast<std::uint32_t>(g.reserved) + g.fat_size + dir_size)) / g.cluster_size;
  const bool fat32 = g.fat_length16 == 0 && g.fat_length32 != 0;
  const std::uint32_t max_clusters = fat32 ? fat32_max : g.clusters > fat12_max ? fat16_max : fat12_max;
  if (g.clusters > max_clusters) return fmt::format("{} clusters is too many", g.clusters);
  return "";
}

std::uint32_t exfat_boot_checksum(Bytes eleven_sectors) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < eleven_sectors.size(); ++i) {
    if (i == 106 || i == 107 || i == 112) continue;
    sum = ((sum << 31) | (sum >> 1)) + std::to_integer<std::uint32_t>(eleven_sectors[i]);
  }
  return sum;
}

}  // namespace diskgate::probe
