#include "probe/test_support.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

namespace diskgate::probe::testing {

namespace {
std::string fixture_path(std::string_view name) {
  const char* dir = std::getenv("FIXTURES");
  return std::string(dir ? dir : "fixtures") + "/images/" + std::string(name) + ".img.gz";
}
}  // namespace

bool fixture_exists(std::string_view name) { return std::filesystem::exists(fixture_path(name)); }

Image load_fixture(std::string_view name) {
  std::string path = fixture_path(name);
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) FAIL("fixture missing: " << path);
  Image image;
  std::vector<char> buffer(1 << 20);
  int n;
  while ((n = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0) {
    auto* start = reinterpret_cast<const std::byte*>(buffer.data());
    image.insert(image.end(), start, start + n);
  }
  gzclose(file);
  if (n < 0) FAIL("fixture unreadable: " << path);
  return image;
}

void put_u8(Image& image, std::size_t offset, std::uint8_t value) { image.at(offset) = std::byte{value}; }
void put_le16(Image& image, std::size_t offset, std::uint16_t value) {
  for (int i = 0; i < 2; ++i) put_u8(image, offset + i, static_cast<std::uint8_t>(value >> (8 * i)));
}
void put_le32(Image& image, std::size_t offset, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) put_u8(image, offset + i, static_cast<std::uint8_t>(value >> (8 * i)));
}
void put_le64(Image& image, std::size_t offset, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) put_u8(image, offset + i, static_cast<std::uint8_t>(value >> (8 * i)));
}
void put_text(Image& image, std::size_t offset, std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) put_u8(image, offset + i, static_cast<std::uint8_t>(text[i]));
}
std::uint32_t get_le32(const Image& image, std::size_t offset) {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= std::to_integer<std::uint32_t>(image.at(offset + i)) << (8 * i);
  return value;
}

std::string tag(const Tags& tags, std::string_view name) {
  for (const Tag& t : tags)
    if (t.name == name) return t.value;
  return "<absent>";
}

bool DebugLog::mentions(std::string_view text) const {
  for (const std::string& line : lines)
    if (line.find(text) != std::string::npos) return true;
  return false;
}

std::optional<Superblock> probe_superblock(const Image& image,
                                           std::optional<Superblock> (*prober)(Source&, const Debug&), DebugLog* log) {
  MemorySource source(image);
  return prober(source, log ? log->sink() : Debug{});
}

TableProbe probe_table(const Image& image, std::optional<PartitionTable> (*prober)(Source&, const Debug&)) {
  TableProbe result;
  MemorySource source(image);
  result.table = prober(source, result.log.sink());
  result.reads = source.reads();
  return result;
}

}  // namespace diskgate::probe::testing
