// What the vfat prober and the MBR prober (which must not take a FAT boot
// sector for a partition table) both check, and the exFAT boot checksum that
// the exFAT and MBR probers both verify.
#pragma once

#include <cstdint>
#include <string>

#include "probe/bytes.h"

namespace diskgate::probe {

// The geometry a FAT boot sector gives, in blkid's 32-bit arithmetic.
struct FatGeometry {
  std::uint8_t cluster_size = 0;  // sectors per cluster
  std::uint16_t reserved = 0;     // reserved sectors
  std::uint8_t fats = 0;
  std::uint16_t sector_size = 0;  // bytes per sector
  std::uint16_t fat_length16 = 0;
  std::uint32_t fat_length32 = 0;
  std::uint32_t fat_size = 0;     // sectors of all FATs
  std::uint32_t dir_entries = 0;  // FAT12/16 root directory entries
  std::uint32_t clusters = 0;
};

// blkid's vfat checks on the first sector: the magics (in blkid's order;
// weak ones need 55 AA and no JFS/HPFS marker), a sane BPB and a cluster
// count within its FAT type's limit. Returns why it is not a FAT boot sector,
// or "" and fills `geometry` when it is.
std::string fat_boot_sector_problem(Bytes sector, FatGeometry& geometry);

// Sum of sectors 0..10 but VolumeFlags (106, 107) and PercentInUse (112),
// rotated right by one before each add; sector 11 repeats it.
std::uint32_t exfat_boot_checksum(Bytes eleven_sectors);

}  // namespace diskgate::probe
