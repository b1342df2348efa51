#include "probe/bytes.h"

#include <catch2/catch.hpp>
#include <vector>

#include "probe/test_support.h"

using namespace diskgate::probe;

TEST_CASE("little-endian loads read the bytes in order") {
  testing::Image image(16);
  testing::put_le64(image, 0, 0x0807060504030201ull);
  CHECK(u8(image, 0) == 0x01);
  CHECK(le16(image, 0) == 0x0201);
  CHECK(le32(image, 1) == 0x05040302u);
  CHECK(le64(image, 0) == 0x0807060504030201ull);
}

TEST_CASE("loads past the end throw OutOfBounds instead of reading") {
  testing::Image image(8);
  CHECK_THROWS_AS(le32(image, 5), OutOfBounds);
  CHECK_THROWS_AS(le64(image, 1), OutOfBounds);
  CHECK_THROWS_AS(slice(image, 9, 0), OutOfBounds);
  CHECK_THROWS_AS(slice(image, 4, SIZE_MAX), OutOfBounds);  // no overflow on offset + length
  CHECK(slice(image, 8, 0).empty());
  CHECK_FALSE(has_magic(image, 6, "abc"));
}

TEST_CASE("identifier text forms match blkid's") {
  testing::Image id(16);
  for (int i = 0; i < 16; ++i) testing::put_u8(id, i, static_cast<std::uint8_t>(i * 17));
  CHECK(uuid_text(id) == "00112233-4455-6677-8899-aabbccddeeff");
  CHECK(guid_text(id) == "33221100-5544-7766-8899-aabbccddeeff");
  CHECK(serial_text(slice(id, 0, 4)) == "3322-1100");
  CHECK_THROWS_AS(uuid_text(slice(id, 0, 15)), OutOfBounds);
}

TEST_CASE("labels stop at NUL and lose trailing white space only") {
  CHECK(label_text(as_bytes(std::string_view("  my lab  \0junk", 15))) == "  my lab");
  CHECK(label_text(as_bytes("NO NAME    ")) == "NO NAME");
  CHECK(label_text(as_bytes("   ")).empty());
}

TEST_CASE("UTF-16LE labels become UTF-8, surrogates paired, stray ones kept as blkid keeps them") {
  // "Ü" U+00DC, "€" U+20AC, U+1F600 as a surrogate pair, then NUL.
  testing::Image raw{std::byte{0xDC}, std::byte{0x00}, std::byte{0xAC}, std::byte{0x20},
                     std::byte{0x3D}, std::byte{0xD8}, std::byte{0x00}, std::byte{0xDE},
                     std::byte{0x00}, std::byte{0x00}, std::byte{0x41}, std::byte{0x00}};
  CHECK(utf16le_to_utf8(raw, 6) == "\xC3\x9C\xE2\x82\xAC\xF0\x9F\x98\x80");
  CHECK(utf16le_to_utf8(raw, 1) == "\xC3\x9C");
  testing::Image lone{std::byte{0x00}, std::byte{0xD8}, std::byte{0x41}, std::byte{0x00}};
  CHECK(utf16le_to_utf8(lone, 2) == "\xED\xA0\x80" "A");
}
