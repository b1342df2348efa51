#include "probe/checksums.h"

#include <blake2.h>
#include <algorithm>
#include <sha2.h>
#include <xxhash.h>
#include <zlib.h>

namespace diskgate::probe {

namespace {
// Reflected CRC-32C (Castagnoli, polynomial 0x82F63B78), one table.
constexpr std::array<std::uint32_t, 256> make_crc32c_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}
constexpr auto crc32c_table = make_crc32c_table();

const unsigned char* data_of(Bytes data) {
  return reinterpret_cast<const unsigned char*>(data.data());
}
}  // namespace

std::uint32_t crc32c_update(std::uint32_t crc, Bytes data) {
  for (std::byte b : data)
    crc = crc32c_table[(crc ^ std::to_integer<std::uint32_t>(b)) & 0xFF] ^ (crc >> 8);
  return crc;
}

std::uint32_t crc32_ieee(Bytes data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths; feed large buffers in pieces.
  while (!data.empty()) {
    std::size_t piece = std::min<std::size_t>(data.size(), 1u << 30);
    crc = crc32(crc, data_of(data), static_cast<uInt>(piece));
    data = data.subspan(piece);
  }
  return static_cast<std::uint32_t>(crc);
}

std::uint64_t xxhash64(Bytes data) { return XXH64(data.data(), data.size(), 0); }

std::array<std::byte, 32> sha256(Bytes data) {
  std::array<std::byte, 32> digest{};
  SHA2_CTX ctx;
  SHA256Init(&ctx);
  SHA256Update(&ctx, data_of(data), data.size());
  SHA256Final(reinterpret_cast<std::uint8_t*>(digest.data()), &ctx);
  return digest;
}

std::array<std::byte, 32> blake2b_256(Bytes data) {
  std::array<std::byte, 32> digest{};
  blake2b(reinterpret_cast<std::uint8_t*>(digest.data()), data.data(), nullptr, digest.size(), data.size(), 0);
  return digest;
}

}  // namespace diskgate::probe
