// Checksums the probers verify. crc32c is ours (small, table-driven); the
// rest come from well-kept libraries (zlib, xxhash, libmd, libb2).
#pragma once

#include <array>
#include <cstdint>

#include "probe/bytes.h"

namespace diskgate::probe {

// Castagnoli CRC without pre/post inversion: crc32c_update(~0u, data) gives
// ext4's raw value; ~crc32c_update(~0u, data) the standard one (btrfs).
std::uint32_t crc32c_update(std::uint32_t crc, Bytes data);
// zlib's CRC-32 (GPT).
std::uint32_t crc32_ieee(Bytes data);
std::uint64_t xxhash64(Bytes data);
std::array<std::byte, 32> sha256(Bytes data);
std::array<std::byte, 32> blake2b_256(Bytes data);

}  // namespace diskgate::probe
