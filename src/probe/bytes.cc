#include "probe/bytes.h"

#include <algorithm>
#include <fmt/format.h>

namespace diskgate::probe {

Bytes slice(Bytes bytes, std::size_t offset, std::size_t length) {
  if (offset > bytes.size() || length > bytes.size() - offset)
    throw OutOfBounds(fmt::format("{} bytes at offset {} lie beyond a buffer of {}", length, offset,
                                  bytes.size()));
  return bytes.subspan(offset, length);
}

namespace {
template <typename T>
T load_le(Bytes bytes, std::size_t offset) {
  Bytes field = slice(bytes, offset, sizeof(T));
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    value |= static_cast<T>(std::to_integer<std::uint8_t>(field[i])) << (8 * i);
  return value;
}
}  // namespace

std::uint8_t u8(Bytes bytes, std::size_t offset) { return load_le<std::uint8_t>(bytes, offset); }
std::uint16_t le16(Bytes bytes, std::size_t offset) { return load_le<std::uint16_t>(bytes, offset); }
std::uint32_t le32(Bytes bytes, std::size_t offset) { return load_le<std::uint32_t>(bytes, offset); }
std::uint64_t le64(Bytes bytes, std::size_t offset) { return load_le<std::uint64_t>(bytes, offset); }

bool has_magic(Bytes bytes, std::size_t offset, std::string_view text) {
  if (offset > bytes.size() || text.size() > bytes.size() - offset) return false;
  Bytes want = as_bytes(text);
  return std::equal(want.begin(), want.end(), bytes.begin() + static_cast<std::ptrdiff_t>(offset));
}

bool all_zero(Bytes bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::string uuid_text(Bytes b) {
  slice(b, 0, 16);
  auto h = [&](std::size_t i) { return std::to_integer<unsigned>(b[i]); };
  return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
                     "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                     h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7), h(8), h(9), h(10), h(11),
                     h(12), h(13), h(14), h(15));
}

std::string guid_text(Bytes b) {
  slice(b, 0, 16);
  auto h = [&](std::size_t i) { return std::to_integer<unsigned>(b[i]); };
  return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
                     "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                     h(3), h(2), h(1), h(0), h(5), h(4), h(7), h(6), h(8), h(9), h(10), h(11),
                     h(12), h(13), h(14), h(15));
}

std::string serial_text(Bytes b) {
  slice(b, 0, 4);
  auto h = [&](std::size_t i) { return std::to_integer<unsigned>(b[i]); };
  return fmt::format("{:02X}{:02X}-{:02X}{:02X}", h(3), h(2), h(1), h(0));
}

std::string label_text(Bytes raw) {
  std::string text;
  for (std::byte b : raw) {
    if (b == std::byte{0}) break;
    text.push_back(static_cast<char>(b));
  }
  // blkid trims with isspace() in the C locale.
  while (!text.empty() && std::string_view(" \t\n\v\f\r").find(text.back()) != std::string_view::npos)
    text.pop_back();
  return text;
}

namespace {
void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}
}  // namespace

std::string utf16le_to_utf8(Bytes raw, std::size_t max_units) {
  std::string out;
  std::size_t units = std::min(max_units, raw.size() / 2);
  for (std::size_t i = 0; i < units; ++i) {
    char32_t unit = le16(raw, 2 * i);
    if (unit == 0) break;
    if (unit >= 0xD800 && unit < 0xDC00 && i + 1 < units) {
      char32_t low = le16(raw, 2 * (i + 1));
      if (low >= 0xDC00 && low < 0xE000) {
        append_utf8(out, 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
        ++i;
        continue;
      }
    }
    // A lone surrogate is encoded as it stands (3 bytes), as blkid does.
    append_utf8(out, unit);
  }
  return out;
}

}  // namespace diskgate::probe
