// What probers find, and the tables that list them.
//
// A superblock prober is a pure function of the bytes a Source gives it. It
// returns the filesystem it recognised or std::nullopt, and tells `debug` why
// it rejected a device that carried its magic (bad checksum, field out of
// range). It lets IoError through: an I/O error aborts probing of the device.
// OutOfBounds thrown by a prober counts as "no match".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probe/source.h"

namespace diskgate::probe {

struct Tag {
  std::string name;
  std::string value;  // raw bytes, escaped only when printed
  bool operator==(const Tag&) const = default;
};
using Tags = std::vector<Tag>;

// The value of the first tag called `name` (a reference into `tags`); an
// empty string when there is none.
const std::string& tag_value(const Tags& tags, std::string_view name);

// Receives one line per rejected candidate ("ext4: superblock checksum ...").
using Debug = std::function<void(std::string_view)>;

// What a btrfs member says about itself and its filesystem; the device map
// assembles members from it.
struct BtrfsMember {
  std::string fsid;      // UUID text
  std::string dev_uuid;  // UUID_SUB text
  std::uint64_t devid = 0;
  std::uint64_t num_devices = 0;
  std::uint64_t generation = 0;
  std::uint64_t total_bytes = 0;
  std::string label;
  bool operator==(const BtrfsMember&) const = default;
};

struct Superblock {
  std::string type;                   // TYPE
  std::string usage = "filesystem";   // USAGE ("other" for jbd)
  // Every tag but TYPE and USAGE, in the order blkid sets them (VERSION
  // included; the printer drops it where plain blkid does).
  Tags tags;
  std::optional<BtrfsMember> btrfs;
};

using SuperblockProbe = std::optional<Superblock> (*)(Source&, const Debug&);
struct SuperblockProber {
  std::string_view name;
  SuperblockProbe probe;
};

// Lengths and offsets in 512-byte sectors, as sysfs gives them.
struct PartitionEntry {
  unsigned number = 0;
  std::uint64_t start = 0;
  std::uint64_t size = 0;
  std::string type;   // GPT: type GUID text; MBR: "0x83"
  std::string uuid;   // GPT: unique GUID; MBR: "%08x-%02x" (empty when disk id is 0)
  std::string name;   // GPT name as UTF-8; MBR: empty
  std::uint64_t flags = 0;  // GPT attributes; MBR boot indicator (0x80)
  bool operator==(const PartitionEntry&) const = default;
};

struct PartitionTable {
  std::string type;  // PTTYPE: "gpt" or "dos"
  std::string id;    // PTUUID; empty when the disk has none
  std::vector<PartitionEntry> entries;
};

using PartitionTableProbe = std::optional<PartitionTable> (*)(Source&, const Debug&);
struct PartitionTableProber {
  std::string_view name;
  PartitionTableProbe probe;
};

// The probers, one per file (ext.cc, vfat.cc, exfat.cc, btrfs.cc, gpt.cc, mbr.cc).
std::optional<Superblock> probe_ext(Source&, const Debug&);  // ext2/3/4, ext4dev, jbd
std::optional<Superblock> probe_vfat(Source&, const Debug&);
std::optional<Superblock> probe_exfat(Source&, const Debug&);
std::optional<Superblock> probe_btrfs(Source&, const Debug&);
std::optional<PartitionTable> probe_gpt(Source&, const Debug&);
std::optional<PartitionTable> probe_mbr(Source&, const Debug&);

// In the order they are tried.
std::span<const SuperblockProber> superblock_probers();
std::span<const PartitionTableProber> partition_table_probers();

// Where a partition device lies on its parent disk (from sysfs).
struct PartitionLocation {
  std::string parent_path;  // /dev/sda
  unsigned parent_major = 0, parent_minor = 0;
  std::uint64_t start = 0, size = 0;  // 512-byte sectors
};

// Everything known about one device.
struct Report {
  std::vector<Superblock> superblocks;     // more than one: ambivalent
  std::optional<PartitionTable> table;     // a table on this device itself
  std::optional<PartitionEntry> entry;     // this device's entry in its parent's table
  std::string entry_scheme;                // PART_ENTRY_SCHEME of `entry`
  std::string entry_disk;                  // PART_ENTRY_DISK, "major:minor"
  bool ambivalent() const { return superblocks.size() > 1; }
  bool found() const { return !superblocks.empty() || table || entry; }
};

// The first partition table any prober finds on `source`.
std::optional<PartitionTable> probe_partition_table(Source& source, const Debug& debug);

// Runs every superblock and partition-table prober over `source`.
// Throws IoError when the device cannot be read.
Report probe_source(Source& source, const Debug& debug);

// Finds the entry starting at `start` with `size` sectors; nullopt if none.
std::optional<PartitionEntry> find_entry(const PartitionTable& table, std::uint64_t start,
                                         std::uint64_t size);

}  // namespace diskgate::probe
