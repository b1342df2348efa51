// btrfs: the primary superblock at 64 KiB, its checksum verified as blkid
// 2.39+ does, and what a member says about its filesystem.
#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "probe/checksums.h"
#include "probe/probe.h"

namespace diskgate::probe {

namespace {

constexpr std::uint64_t kSuperblockOffset = 64 * 1024;
constexpr std::size_t kSuperblockSize = 4096;
constexpr std::size_t kChecksummedFrom = 32;  // the csum field itself is not covered
constexpr std::uint64_t kMinDeviceSize = 1024 * 1024;  // blkid's minsz for btrfs

// The checksum stored in the first bytes of the superblock, per csum_type.
struct Checksum {
  std::string_view name;
  std::size_t size;
  std::array<std::byte, 32> value;
};

std::optional<Checksum> compute(std::uint16_t csum_type, Bytes covered) {
  auto le = [](std::uint64_t v, std::size_t n) {
    std::array<std::byte, 32> out{};
    for (std::size_t i = 0; i < n; ++i) out[i] = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
    return out;
  };
  switch (csum_type) {
    case 0: return Checksum{"crc32c", 4, le(~crc32c_update(~0u, covered), 4)};
    case 1: return Checksum{"xxhash64", 8, le(xxhash64(covered), 8)};
    case 2: return Checksum{"sha256", 32, sha256(covered)};
    case 3: return Checksum{"blake2b", 32, blake2b_256(covered)};
    default: return std::nullopt;
  }
}

}  // namespace

std::optional<Superblock> probe_btrfs(Source& source, const Debug& debug) {
  // blkid skips small devices before it looks at them.
  if (source.size() < kMinDeviceSize) return std::nullopt;
  Bytes sb = source.read(kSuperblockOffset, kSuperblockSize);
  if (!has_magic(sb, 0x40, "_BHRfS_M")) return std::nullopt;
  auto reject = [&](const std::string& why) -> std::optional<Superblock> {
    if (debug) debug(fmt::format("btrfs: {}", why));
    return std::nullopt;
  };
  if (sb.size() < kSuperblockSize) return reject("device ends inside the superblock");

  std::uint16_t csum_type = le16(sb, 196);
  auto expected = compute(csum_type, slice(sb, kChecksummedFrom, kSuperblockSize - kChecksummedFrom));
  if (!expected) return reject(fmt::format("unknown checksum type {}", csum_type));
  Bytes stored = slice(sb, 0, expected->size);
  if (!std::equal(stored.begin(), stored.end(), expected->value.begin()))
    return reject(fmt::format("superblock {} checksum does not match", expected->name));

  std::uint32_t sectorsize = le32(sb, 144);
  if (sectorsize == 0) return reject("sectorsize is 0");

  Bytes fsid = slice(sb, 32, 16);
  Bytes dev_uuid = slice(sb, 267, 16);
  std::string label = label_text(slice(sb, 299, 256));

  Superblock found;
  found.type = "btrfs";
  // blkid's order: LABEL, UUID, UUID_SUB, BLOCK_SIZE.
  if (!label.empty()) found.tags.push_back({"LABEL", label});
  if (!all_zero(fsid)) found.tags.push_back({"UUID", uuid_text(fsid)});
  if (!all_zero(dev_uuid)) found.tags.push_back({"UUID_SUB", uuid_text(dev_uuid)});
  found.tags.push_back({"BLOCK_SIZE", std::to_string(sectorsize)});

  BtrfsMember member;
  member.fsid = uuid_text(fsid);
  member.dev_uuid = uuid_text(dev_uuid);
  member.devid = le64(sb, 201);
  member.num_devices = le64(sb, 136);
  member.generation = le64(sb, 72);
  member.total_bytes = le64(sb, 112);
  member.label = label;
  found.btrfs = std::move(member);
  return found;
}

}  // namespace diskgate::probe
