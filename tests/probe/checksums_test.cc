// Known-answer vectors for the checksums the probers verify. Sources: the
// CRC catalogue check value ("123456789"), RFC 3720 B.4 (CRC32C), the xxHash
// and SHA-256 reference outputs, and Python's hashlib.blake2b(digest_size=32).
// The 4064-byte pattern (the length of a btrfs superblock's checksummed part)
// was hashed by Python's hashlib/zlib and a reference xxh64.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "probe/checksums.h"
#include "probe/test_support.h"

namespace diskgate::probe {
namespace {

std::string hex(const std::array<std::byte, 32>& digest) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::byte b : digest) {
    out.push_back(digits[std::to_integer<unsigned>(b) >> 4]);
    out.push_back(digits[std::to_integer<unsigned>(b) & 0xF]);
  }
  return out;
}

// 4064 bytes of (i * 7 + 3) & 0xFF.
std::vector<std::byte> pattern() {
  std::vector<std::byte> out(4064);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::byte(static_cast<std::uint8_t>(i * 7 + 3));
  return out;
}

std::vector<std::byte> filled(std::size_t n, std::uint8_t value) {
  return std::vector<std::byte>(n, std::byte{value});
}

std::vector<std::byte> counting(std::size_t n) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = std::byte(static_cast<std::uint8_t>(i));
  return out;
}

std::uint32_t crc32c(Bytes data) { return ~crc32c_update(~0u, data); }

}  // namespace

TEST_CASE("crc32c standard form matches the check value and RFC 3720 vectors") {
  CHECK(crc32c(as_bytes("123456789")) == 0xE3069283u);
  CHECK(crc32c(as_bytes("")) == 0u);
  CHECK(crc32c(as_bytes("a")) == 0xC1D04330u);
  CHECK(crc32c(filled(32, 0x00)) == 0x8A9136AAu);
  CHECK(crc32c(filled(32, 0xFF)) == 0x62A8AB43u);
  CHECK(crc32c(counting(32)) == 0x46DD794Eu);
  CHECK(crc32c(pattern()) == 0x4AB25E87u);
}

TEST_CASE("crc32c raw form (ext4) is the standard form without final inversion") {
  CHECK(crc32c_update(~0u, as_bytes("123456789")) == 0x1CF96D7Cu);
  CHECK(crc32c_update(0u, as_bytes("")) == 0u);
}

TEST_CASE("crc32c updates chain across pieces") {
  std::uint32_t part = crc32c_update(~0u, as_bytes("1234"));
  CHECK(~crc32c_update(part, as_bytes("56789")) == 0xE3069283u);
}

TEST_CASE("crc32_ieee matches zlib's check values") {
  CHECK(crc32_ieee(as_bytes("123456789")) == 0xCBF43926u);
  CHECK(crc32_ieee(as_bytes("")) == 0u);
  CHECK(crc32_ieee(as_bytes("The quick brown fox jumps over the lazy dog")) == 0x414FA339u);
  CHECK(crc32_ieee(filled(32, 0xFF)) == 0xFF6CAB0Bu);
  CHECK(crc32_ieee(pattern()) == 0xEA5668D8u);
}

TEST_CASE("xxhash64 with seed 0 matches reference outputs") {
  CHECK(xxhash64(as_bytes("")) == 0xEF46DB3751D8E999ull);
  CHECK(xxhash64(as_bytes("a")) == 0xD24EC4F1A98C6E5Bull);
  CHECK(xxhash64(as_bytes("abc")) == 0x44BC2CF5AD770999ull);
  CHECK(xxhash64(as_bytes("123456789")) == 0x8CB841DB40E6AE83ull);
  // 32 bytes and more take the four-lane path.
  CHECK(xxhash64(counting(32)) == 0xCBF59C5116FF32B4ull);
  CHECK(xxhash64(pattern()) == 0xD5F06E1B888F6EF8ull);
}

TEST_CASE("sha256 matches FIPS 180 examples") {
  CHECK(hex(sha256(as_bytes(""))) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(sha256(as_bytes("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(sha256(as_bytes("The quick brown fox jumps over the lazy dog"))) ==
        "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592");
  CHECK(hex(sha256(pattern())) == "93c17909d9b1697cb35dd230b8805ef22567f522face2fb396dd68d0b407a8f2");
}

TEST_CASE("blake2b_256 matches reference outputs") {
  CHECK(hex(blake2b_256(as_bytes(""))) == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
  CHECK(hex(blake2b_256(as_bytes("abc"))) == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  CHECK(hex(blake2b_256(counting(32))) == "cb2f5160fc1f7e05a55ef49d340b48da2e5a78099d53393351cd579dd42503d6");
  CHECK(hex(blake2b_256(pattern())) == "31a87aef095427b2a1ac9e53ab32e1d562fc15685e9166883ba55e6a51e0b296");
}

}  // namespace diskgate::probe
