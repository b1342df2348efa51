// GUID partition tables, checked the way libblkid 2.38 checks them: a
// protective MBR, the primary header at LBA 1 or else the backup at the last
// LBA, both CRCs, and entries inside the usable area. Sectors are 512 bytes.
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "probe/checksums.h"
#include "probe/probe.h"

namespace diskgate::probe {

namespace {

constexpr std::uint64_t kSector = 512;
constexpr std::uint32_t kHeaderMinSize = 92;  // the header fields blkid reads
constexpr std::uint32_t kEntrySize = 128;     // blkid accepts no other size
// Our own bound (blkid has none below 4 GiB): 8192 entries, 64 times the
// usual 128, so that a hostile count cannot make us read a huge array.
constexpr std::uint64_t kMaxArrayBytes = 1 << 20;

// Header fields (UEFI spec, table 5-5).
constexpr std::size_t kHeaderSize = 12, kHeaderCrc = 16, kMyLba = 24, kFirstUsable = 40,
                      kLastUsable = 48, kDiskGuid = 56, kEntriesLba = 72, kEntryCount = 80,
                      kEntrySizeField = 84, kEntriesCrc = 88;

// Sector 0 carries 55 AA and an entry of type 0xEE; other entries may be
// anything (hybrid MBRs), boot flags are not looked at.
bool protective_mbr(Bytes sector0) {
  if (sector0.size() < kSector || u8(sector0, 510) != 0x55 || u8(sector0, 511) != 0xAA) return false;
  for (std::size_t i = 0; i < 4; ++i)
    if (u8(sector0, 446 + 16 * i + 4) == 0xEE) return true;
  return false;
}

struct Header {
  std::uint64_t first_usable = 0, last_usable = 0;
  std::uint32_t entry_count = 0;
  std::array<std::byte, 16> disk_guid{};
  Bytes entries;  // entry_count * 128 bytes, CRC checked
};

// Validates the header in `sector` (read from `lba`) and reads its entry
// array; nullopt with a debug line saying why when it is not usable.
std::optional<Header> check_header(Source& source, Bytes sector, std::uint64_t lba,
                                   std::uint64_t last_lba, std::string_view which,
                                   const Debug& debug) {
  auto reject = [&](std::string_view why) -> std::optional<Header> {
    if (debug) debug(fmt::format("gpt: {} header at LBA {}: {}", which, lba, why));
    return std::nullopt;
  };
  if (sector.size() < kSector) return reject("beyond the end of the device");
  if (!has_magic(sector, 0, "EFI PART")) return reject("no \"EFI PART\" signature");

  std::uint32_t header_size = le32(sector, kHeaderSize);
  if (header_size < kHeaderMinSize || header_size > kSector)
    return reject(fmt::format("header size {} out of range", header_size));

  // The CRC covers header_size bytes with its own field taken as zero.
  std::array<std::byte, kSector> copy{};
  std::memcpy(copy.data(), sector.data(), header_size);
  std::memset(copy.data() + kHeaderCrc, 0, 4);
  std::uint32_t crc = crc32_ieee(Bytes(copy.data(), header_size));
  if (crc != le32(sector, kHeaderCrc))
    return reject(fmt::format("header CRC mismatch (stored {:08x}, computed {:08x})",
                              le32(sector, kHeaderCrc), crc));

  if (le64(sector, kMyLba) != lba)
    return reject(fmt::format("MyLBA is {}", le64(sector, kMyLba)));

  Header header;
  header.first_usable = le64(sector, kFirstUsable);
  header.last_usable = le64(sector, kLastUsable);
  if (header.last_usable < header.first_usable || header.first_usable > last_lba ||
      header.last_usable > last_lba)
    return reject("usable LBA range out of range");
  if (header.first_usable < lba && lba < header.last_usable)
    return reject("header lies inside the usable area");

  header.entry_count = le32(sector, kEntryCount);
  std::uint32_t entry_size = le32(sector, kEntrySizeField);
  std::uint64_t array_bytes = std::uint64_t{header.entry_count} * entry_size;
  if (entry_size != kEntrySize || array_bytes == 0)
    return reject(fmt::format("{} entries of {} bytes", header.entry_count, entry_size));
  if (array_bytes > kMaxArrayBytes)
    return reject(fmt::format("entry count {} too large", header.entry_count));

  // An LBA this large wraps around, as blkid's offset arithmetic does.
  std::uint64_t array_offset = le64(sector, kEntriesLba) * kSector;
  header.entries = source.read(array_offset, static_cast<std::size_t>(array_bytes));
  if (header.entries.size() < array_bytes) return reject("entry array beyond the end of the device");
  std::uint32_t array_crc = crc32_ieee(header.entries);
  if (array_crc != le32(sector, kEntriesCrc))
    return reject(fmt::format("entry array CRC mismatch (stored {:08x}, computed {:08x})",
                              le32(sector, kEntriesCrc), array_crc));

  std::memcpy(header.disk_guid.data(), sector.data() + kDiskGuid, 16);
  return header;
}

}  // namespace

std::optional<PartitionTable> probe_gpt(Source& source, const Debug& debug) {
  std::uint64_t size = source.size();
  if (size < kSector) return std::nullopt;
  std::uint64_t last_lba = size / kSector - 1;

  // Sectors 0 and 1 in one read: the MBR and the primary header.
  Bytes head = source.read(0, 2 * kSector);
  if (!protective_mbr(head)) {
    if (debug && has_magic(head, kSector, "EFI PART"))
      debug("gpt: \"EFI PART\" at LBA 1 but no protective MBR");
    return std::nullopt;
  }

  Bytes primary = head.size() >= 2 * kSector ? head.subspan(kSector, kSector) : Bytes{};
  std::optional<Header> header = check_header(source, primary, 1, last_lba, "primary", debug);
  // blkid falls back to the backup header for any fault of the primary.
  if (!header && last_lba != 1) {
    Bytes backup = source.read(last_lba * kSector, kSector);
    header = check_header(source, backup, last_lba, last_lba, "backup", debug);
  }
  if (!header) {
    // blkid's "PMBR" prober (run after gpt) reports a protective MBR whose
    // GPT is unusable as PTTYPE="PMBR", with no PTUUID and no partitions.
    return PartitionTable{"PMBR", "", {}};
  }

  PartitionTable table;
  table.type = "gpt";
  if (!all_zero(header->disk_guid)) table.id = guid_text(header->disk_guid);

  for (std::uint32_t i = 0; i < header->entry_count; ++i) {
    Bytes entry = slice(header->entries, std::size_t{i} * kEntrySize, kEntrySize);
    // Unused and out-of-range entries still take their number.
    if (all_zero(slice(entry, 0, 16))) continue;
    std::uint64_t start = le64(entry, 32);
    std::uint64_t end = le64(entry, 40);
    if (start < header->first_usable || end > header->last_usable) {
      if (debug) debug(fmt::format("gpt: entry {} ({}..{}) outside the usable area", i + 1, start, end));
      continue;
    }
    PartitionEntry part;
    part.number = i + 1;
    part.start = start;
    part.size = end - start + 1;  // wraps when end < start, as in blkid
    part.type = guid_text(slice(entry, 0, 16));
    part.uuid = guid_text(slice(entry, 16, 16));
    // utf16le_to_utf8 stops at U+0000, so label_text only trims trailing white space.
    part.name = label_text(as_bytes(utf16le_to_utf8(slice(entry, 56, 72), 36)));
    part.flags = le64(entry, 48);
    table.entries.push_back(std::move(part));
  }
  return table;
}

}  // namespace diskgate::probe
