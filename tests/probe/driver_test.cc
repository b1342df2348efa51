// The driver (probe.cc): how prober outcomes combine into a Report.
#include <catch2/catch.hpp>

#include "probe/probe.h"
#include "probe/test_support.h"

using namespace diskgate::probe;

namespace {
// A device whose every read fails, as a disk returning EIO does.
class FailingSource : public Source {
 public:
  std::uint64_t size() const override { return 1 << 20; }
  Bytes read(std::uint64_t, std::size_t) override { throw IoError("dev: read failed: Input/output error", 5); }
};
}  // namespace

TEST_CASE("driver: an I/O error aborts probing instead of reading as nothing") {
  FailingSource source;
  CHECK_THROWS_AS(probe_source(source, {}), IoError);
}

TEST_CASE("driver: two filesystems on one device are reported as ambivalent, not guessed") {
  // An ext4 fixture with a FAT boot sector copied over its first sector, as
  // blkid's own ambivalence test does.
  testing::Image image = testing::load_fixture("ext4-4k");
  testing::Image fat = testing::load_fixture("vfat-fat16-latin1");
  std::copy(fat.begin(), fat.begin() + 512, image.begin());
  MemorySource source(image);
  Report report = probe_source(source, {});
  REQUIRE(report.superblocks.size() == 2);
  CHECK(report.ambivalent());
  CHECK(report.superblocks[0].type == "vfat");
  CHECK(report.superblocks[1].type == "ext4");
}

TEST_CASE("driver: empty and tiny devices give an empty report") {
  MemorySource empty(testing::Image{});
  CHECK_FALSE(probe_source(empty, {}).found());
  MemorySource tiny(testing::Image(100, std::byte{0x55}));
  CHECK_FALSE(probe_source(tiny, {}).found());
}

TEST_CASE("driver: an extended partition is found by its start whatever size sysfs shows") {
  PartitionTable table{"dos", "d15c0006", {}};
  PartitionEntry extended;
  extended.number = 2;
  extended.start = 10240;
  extended.size = 71680;
  extended.type = "0x5";
  table.entries.push_back(extended);
  CHECK(find_entry(table, 10240, 2));  // Linux shows it as 2 sectors
  CHECK_FALSE(find_entry(table, 10240, 4096));
  table.entries[0].type = "0x83";
  CHECK_FALSE(find_entry(table, 10240, 2));  // only extended partitions get that leeway
  CHECK(find_entry(table, 10240, 71680));
}
