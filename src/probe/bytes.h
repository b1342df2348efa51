// Bounds-checked little-endian loads and the text forms blkid gives to
// on-disk identifiers. Every prober reads through these, so a hostile or
// truncated buffer can only ever raise OutOfBounds, never read past its end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace diskgate::probe {

using Bytes = std::span<const std::byte>;

// A field lies (partly) outside the buffer. The driver turns it into
// "no match" with a debug reason; it is never an I/O error.
struct OutOfBounds : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The sub-span [offset, offset + length); throws OutOfBounds when it does not fit.
Bytes slice(Bytes bytes, std::size_t offset, std::size_t length);

std::uint8_t u8(Bytes bytes, std::size_t offset);
std::uint16_t le16(Bytes bytes, std::size_t offset);
std::uint32_t le32(Bytes bytes, std::size_t offset);
std::uint64_t le64(Bytes bytes, std::size_t offset);

// True when `text` is stored at `offset` (false when out of bounds).
bool has_magic(Bytes bytes, std::size_t offset, std::string_view text);

bool all_zero(Bytes bytes);

// 16 bytes in on-disk order, lowercase 8-4-4-4-12 (ext, btrfs).
std::string uuid_text(Bytes sixteen);
// 16 bytes of a GUID: first three fields little-endian (GPT).
std::string guid_text(Bytes sixteen);
// 4 bytes printed as %02X%02X-%02X%02X of bytes 3,2,1,0 (FAT, exFAT).
std::string serial_text(Bytes four);

// Bytes up to the first NUL with trailing white space trimmed; "" when empty.
std::string label_text(Bytes raw);
// UTF-16LE code units to UTF-8, stopping at U+0000 or after `max_units`.
// Unpaired surrogates are encoded as they stand (ED A0 80 ...), as blkid does.
std::string utf16le_to_utf8(Bytes raw, std::size_t max_units);

// Convenience for building test buffers and comparing magics.
inline Bytes as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

}  // namespace diskgate::probe
