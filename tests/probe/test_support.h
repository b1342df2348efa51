// Helpers shared by the probe unit tests: building images in memory and
// loading the small compressed fixtures kept in fixtures/images/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probe/probe.h"
#include "probe/source.h"

namespace diskgate::probe::testing {

using Image = std::vector<std::byte>;

// Decompresses fixtures/images/<name>.img.gz (directory from $FIXTURES).
// Fails the running test when the fixture is missing.
Image load_fixture(std::string_view name);
bool fixture_exists(std::string_view name);

void put_u8(Image& image, std::size_t offset, std::uint8_t value);
void put_le16(Image& image, std::size_t offset, std::uint16_t value);
void put_le32(Image& image, std::size_t offset, std::uint32_t value);
void put_le64(Image& image, std::size_t offset, std::uint64_t value);
void put_text(Image& image, std::size_t offset, std::string_view text);
std::uint32_t get_le32(const Image& image, std::size_t offset);

// The value of tag `name`, or "<absent>".
std::string tag(const Tags& tags, std::string_view name);
// Collects debug lines so tests can check why a prober said no.
struct DebugLog {
  std::vector<std::string> lines;
  Debug sink() {
    return [this](std::string_view line) { lines.emplace_back(line); };
  }
  bool mentions(std::string_view text) const;
};

// Runs a filesystem prober over an image held in memory; `log`, when given,
// collects why it said no.
std::optional<Superblock> probe_superblock(const Image& image,
                                           std::optional<Superblock> (*prober)(Source&, const Debug&),
                                           DebugLog* log = nullptr);

// What a partition-table prober made of an image: the table, why it said no,
// and how many reads it took.
struct TableProbe {
  std::optional<PartitionTable> table;
  DebugLog log;
  int reads = 0;
};
TableProbe probe_table(const Image& image, std::optional<PartitionTable> (*prober)(Source&, const Debug&));

}  // namespace diskgate::probe::testing
