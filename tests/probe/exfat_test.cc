// exFAT prober: real images from fixtures/unit-exfat-btrfs.sh and
// hand-made corruptions of them. Expected tag values are what
// `blkid -p -o export` (util-linux 2.38.1) printed for each fixture, less the
// PTTYPE=dos that 2.38.1 wrongly adds to exFAT.
//
// Geometry of the 512-byte-sector fixtures (from their boot sectors):
// FatOffset 24, FatLength 8, ClusterHeapOffset 32, ClusterCount 252,
// 8 sectors per cluster, root directory at cluster 5 (byte 28672).
#include <catch2/catch.hpp>

#include <random>

#include "probe/temp_image.h"
#include "probe/test_support.h"

namespace diskgate::probe {
namespace {

using namespace testing;

constexpr std::size_t kFat = 24 * 512;
constexpr std::size_t kClusterSize = 4096;
std::size_t cluster_at(std::uint32_t cluster) { return (32 + (cluster - 2) * 8) * 512; }
const std::size_t kRoot = cluster_at(5);

// "Ünïcode lbl" in UTF-8.
const std::string kUnicodeLabel = "\xC3\x9C" "n\xC3\xAF" "code lbl";

std::optional<Superblock> probe(const Image& image, DebugLog* log = nullptr) {
  return probe_superblock(image, probe_exfat, log);
}

// Rewrites the boot checksum (sector 11) after a test changed the boot
// sector, so that the changed field is what the prober sees wrong.
void resign(Image& image, std::size_t sector = 512) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < 11 * sector; ++i) {
    if (i == 106 || i == 107 || i == 112) continue;
    sum = ((sum << 31) | (sum >> 1)) + std::to_integer<std::uint32_t>(image.at(i));
  }
  for (std::size_t at = 11 * sector; at < 12 * sector; at += 4) put_le32(image, at, sum);
}

// Fills a directory cluster with entries that are neither end-of-directory
// nor a label (0x81, the allocation bitmap's type).
void fill_without_label(Image& image, std::uint32_t cluster) {
  for (std::size_t i = 0; i < kClusterSize; ++i) put_u8(image, cluster_at(cluster) + i, 0x81);
}

void put_label_entry(Image& image, std::size_t at, std::u16string_view text, std::uint8_t count) {
  put_u8(image, at, 0x83);
  put_u8(image, at + 1, count);
  for (std::size_t i = 0; i < text.size(); ++i) put_le16(image, at + 2 + 2 * i, text[i]);
}

}  // namespace

TEST_CASE("exfat: unicode label, serial, version and block size as blkid") {
  auto sb = probe(load_fixture("exfat-unicode"));
  REQUIRE(sb);
  CHECK(sb->type == "exfat");
  CHECK(sb->usage == "filesystem");
  CHECK_FALSE(sb->btrfs);
  // blkid: LABEL=M-CM-^\nM-CM-/code\ lbl UUID=1234-ABCD VERSION=1.0 BLOCK_SIZE=512
  Tags want{{"LABEL", kUnicodeLabel}, {"UUID", "1234-ABCD"}, {"VERSION", "1.0"}, {"BLOCK_SIZE", "512"}};
  CHECK(sb->tags == want);
}

TEST_CASE("exfat: label with spaces keeps inner ones and loses trailing ones") {
  // mkfs.exfat -L 'my label ' stores 9 characters; blkid: LABEL=my\ label
  auto sb = probe(load_fixture("exfat-spaces"));
  REQUIRE(sb);
  Tags want{{"LABEL", "my label"}, {"UUID", "0BAD-F00D"}, {"VERSION", "1.0"}, {"BLOCK_SIZE", "512"}};
  CHECK(sb->tags == want);
}

TEST_CASE("exfat: no label gives no LABEL tag") {
  // mkfs.exfat writes an empty label entry; blkid: UUID=2468-ACE0 VERSION=1.0 BLOCK_SIZE=512
  auto sb = probe(load_fixture("exfat-nolabel"));
  REQUIRE(sb);
  Tags want{{"UUID", "2468-ACE0"}, {"VERSION", "1.0"}, {"BLOCK_SIZE", "512"}};
  CHECK(sb->tags == want);
}

TEST_CASE("exfat: 4 KiB sectors") {
  // blkid: LABEL=four\ k UUID=4096-0FFF VERSION=1.0 BLOCK_SIZE=4096
  auto sb = probe(load_fixture("exfat-4k"));
  REQUIRE(sb);
  Tags want{{"LABEL", "four k"}, {"UUID", "4096-0FFF"}, {"VERSION", "1.0"}, {"BLOCK_SIZE", "4096"}};
  CHECK(sb->tags == want);
}

TEST_CASE("exfat: reads the boot region once and the root directory once") {
  MemorySource small(load_fixture("exfat-unicode"));
  REQUIRE(probe_exfat(small, {}));
  CHECK(small.reads() == 2);
  // 4 KiB sectors: the first read of 6 KiB is too short for the boot region.
  MemorySource big(load_fixture("exfat-4k"));
  REQUIRE(probe_exfat(big, {}));
  CHECK(big.reads() == 3);
}

namespace {

// exfat-nolabel turned into a volume of 128 KiB clusters (shift 8) whose
// root directory is cluster 2, at byte 16384 (ClusterHeapOffset 32): the
// whole cluster is zeroed (end of directory at once), then the first
// `filler` entries are made allocation-bitmap entries (0x81), which are
// neither a label nor the end.
constexpr std::size_t kBigRoot = 32 * 512;
constexpr std::size_t kBigCluster = 128 * 1024;
Image big_cluster(std::size_t filler) {
  Image image = load_fixture("exfat-nolabel");
  put_u8(image, 109, 8);
  put_le32(image, 96, 2);
  resign(image);
  for (std::size_t i = 0; i < kBigCluster; ++i) put_u8(image, kBigRoot + i, 0);
  for (std::size_t i = 0; i < filler; ++i) put_u8(image, kBigRoot + i * 32, 0x81);
  return image;
}

}  // namespace

TEST_CASE("exfat: a big root cluster is read only up to the block holding the label") {
  Image image = big_cluster(0);
  put_label_entry(image, kBigRoot, u"big", 3);
  MemorySource source(std::move(image));
  auto sb = probe_exfat(source, {});
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "big");  // blkid reads entry by entry: LABEL=big
  CHECK(source.reads() == 2);
  CHECK(source.bytes_read() == 6144 + 4096);  // not the whole 128 KiB cluster
}

TEST_CASE("exfat: a label far into a big root cluster is found piece by piece") {
  // Pieces of the cluster: 4, 4, 8, 16, 32 and 64 KiB.
  struct Case {
    std::size_t at;  // byte offset of the label entry in the cluster
    int reads;
    std::uint64_t bytes;
  };
  for (Case c : {Case{4096 - 32, 2, 4096}, Case{4096, 3, 8192}, Case{8192, 4, 16384},
                 Case{100 * 1024, 7, kBigCluster}, Case{kBigCluster - 32, 7, kBigCluster}}) {
    INFO("label at byte " << c.at);
    Image image = big_cluster(c.at / 32);
    put_label_entry(image, kBigRoot + c.at, u"far", 3);
    MemorySource source(std::move(image));
    auto sb = probe_exfat(source, {});
    REQUIRE(sb);
    CHECK(tag(sb->tags, "LABEL") == "far");
    CHECK(source.reads() == c.reads);
    CHECK(source.bytes_read() == 6144 + c.bytes);
  }
}

TEST_CASE("exfat: the end of directory stops the reading of a big cluster") {
  Image image = big_cluster(8192 / 32 + 10);  // the end mark is entry 266
  put_label_entry(image, kBigRoot + 40000, u"after end", 9);
  MemorySource source(std::move(image));
  auto sb = probe_exfat(source, {});
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "<absent>");  // blkid stops at the end mark too
  CHECK(source.reads() == 4);  // boot, then 4, 4 and 8 KiB of the cluster
  CHECK(source.bytes_read() == 6144 + 16384);
}

TEST_CASE("exfat: a device ending inside a big root cluster") {
  // blkid reads entry by entry: a label before the end counts, one after it
  // does not, and a partial entry is no entry.
  Image image = big_cluster(2000);
  put_label_entry(image, kBigRoot + 2000 * 32, u"edge", 4);
  const std::size_t end = kBigRoot + 2000 * 32 + 32;
  for (std::size_t cut : {end, end + 1000}) {
    INFO("device of " << cut << " bytes");
    auto sb = probe(Image(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(cut)));
    REQUIRE(sb);
    CHECK(tag(sb->tags, "LABEL") == "edge");
  }
  auto sb = probe(Image(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(end - 1)));
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "<absent>");
}

TEST_CASE("exfat: through FileSource a volume on a 1 GiB device costs 3 reads at most") {
  // All probers, as diskgatectl runs them: the head (8 KiB), the root
  // directory's first block and btrfs' 64 KiB.
  Image big = big_cluster(0);
  put_label_entry(big, kBigRoot, u"big", 3);
  struct Case {
    const char* what;
    Image image;
    const char* label;  // blkid's LABEL
  };
  Case cases[] = {{"exfat-unicode", load_fixture("exfat-unicode"), "\xC3\x9C" "n\xC3\xAF" "code lbl"},
                  {"exfat-nolabel", load_fixture("exfat-nolabel"), "<absent>"},
                  {"128 KiB clusters", big, "big"}};
  for (const Case& c : cases) {
    INFO(c.what);
    testing::TempImage file(c.image, testing::kOneGiB);
    FileSource source(file.path());
    Report report = probe_source(source, {});
    REQUIRE(report.superblocks.size() == 1);
    CHECK(report.superblocks[0].type == "exfat");
    CHECK(tag(report.superblocks[0].tags, "LABEL") == c.label);
    CHECK(source.read_calls() <= 3);
    CHECK(source.bytes_read() <= 16384);
  }
}

TEST_CASE("exfat: boot checksum mismatch is rejected") {
  // A byte in sectors 0..10, and one copy of the sum in sector 11.
  for (std::size_t at : {std::size_t{0x78}, std::size_t{3 * 512 + 10}, std::size_t{11 * 512 - 1},
                         std::size_t{11 * 512}, std::size_t{12 * 512 - 1}}) {
    INFO(at);
    Image image = load_fixture("exfat-unicode");
    image.at(at) ^= std::byte{0x01};
    DebugLog log;
    CHECK_FALSE(probe(image, &log));
    CHECK(log.mentions("checksum"));
  }
  // 4 KiB sectors: the sum covers 44 KiB.
  Image image = load_fixture("exfat-4k");
  image.at(10 * 4096 + 5) ^= std::byte{0x01};
  DebugLog log;
  CHECK_FALSE(probe(image, &log));
  CHECK(log.mentions("checksum"));
}

TEST_CASE("exfat: VolumeFlags and PercentInUse are outside the checksum") {
  Image image = load_fixture("exfat-unicode");
  put_u8(image, 106, 0x02);
  put_u8(image, 107, 0x01);
  put_u8(image, 112, 50);
  CHECK(probe(std::move(image)));
}

TEST_CASE("exfat: every boot sector check rejects with a reason") {
  struct Case {
    const char* what;
    std::size_t offset;
    int width;  // 1, 2 or 4 bytes
    std::uint32_t value;
    const char* reason;
  };
  const Case cases[] = {
      {"boot signature", 510, 2, 0x0000, "55 AA"},
      {"jump", 0, 1, 0xE9, "jump"},
      {"MustBeZero first", 11, 1, 1, "MustBeZero"},
      {"MustBeZero last", 63, 1, 0x80, "MustBeZero"},
      {"no FATs", 110, 1, 0, "NumberOfFats"},
      {"three FATs", 110, 1, 3, "NumberOfFats"},
      {"sector shift 8", 108, 1, 8, "BytesPerSectorShift"},
      {"sector shift 13", 108, 1, 13, "BytesPerSectorShift"},
      {"cluster shift 17", 109, 1, 17, "SectorsPerClusterShift"},  // 25 - 9 = 16 at most
      {"FatOffset 23", 80, 4, 23, "FatOffset"},
      {"FatOffset beyond heap", 80, 4, 0xFFFFFFF0, "FatOffset"},
      {"FatLength beyond heap", 84, 4, 9, "FatOffset"},  // 24 + 9 > 32
      {"root cluster 1", 96, 4, 1, "FirstClusterOfRootDirectory"},
      {"root cluster past count", 96, 4, 254, "FirstClusterOfRootDirectory"},  // 252 + 1 is last
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Image image = load_fixture("exfat-unicode");
    if (c.width == 1) put_u8(image, c.offset, static_cast<std::uint8_t>(c.value));
    if (c.width == 2) put_le16(image, c.offset, static_cast<std::uint16_t>(c.value));
    if (c.width == 4) put_le32(image, c.offset, c.value);
    resign(image);
    DebugLog log;
    CHECK_FALSE(probe(image, &log));
    CHECK(log.mentions(c.reason));
  }
}

TEST_CASE("exfat: boundary values of the boot sector checks pass") {
  Image image = load_fixture("exfat-unicode");
  put_u8(image, 109, 16);         // 25 - 9
  put_le32(image, 96, 253);       // ClusterCount + 1
  put_le32(image, 84, 8);         // FatOffset + FatLength == ClusterHeapOffset
  put_u8(image, 110, 1);
  resign(image);
  // The root directory moved beyond the device: no label, still exFAT.
  auto sb = probe(std::move(image));
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "<absent>");
  CHECK(tag(sb->tags, "UUID") == "1234-ABCD");
}

TEST_CASE("exfat: label in the second cluster of the root directory") {
  Image image = load_fixture("exfat-nolabel");
  fill_without_label(image, 5);
  put_le32(image, kFat + 5 * 4, 7);
  put_le32(image, kFat + 7 * 4, 0xFFFFFFFF);
  put_label_entry(image, cluster_at(7), u"far away", 8);
  MemorySource source(std::move(image));
  auto sb = probe_exfat(source, {});
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "far away");
  CHECK(source.reads() == 4);  // boot, cluster 5, FAT entry, cluster 7
}

TEST_CASE("exfat: a root directory chain that loops terminates") {
  for (std::uint32_t back : {5u, 6u}) {
    INFO("loop back to " << back);
    Image image = load_fixture("exfat-nolabel");
    fill_without_label(image, 5);
    fill_without_label(image, 6);
    put_le32(image, kFat + 5 * 4, 6);
    put_le32(image, kFat + 6 * 4, back);
    MemorySource source(std::move(image));
    auto sb = probe_exfat(source, {});
    REQUIRE(sb);  // still exFAT, like blkid, just without a label
    CHECK(tag(sb->tags, "LABEL") == "<absent>");
    CHECK(source.reads() <= 2 + 2 * 512);
  }
}

TEST_CASE("exfat: chain ends at free, reserved and bad FAT entries") {
  for (std::uint32_t next : {0u, 1u, 0x0FFFFFF7u, 0xFFFFFFF8u}) {
    INFO(next);
    Image image = load_fixture("exfat-nolabel");
    fill_without_label(image, 5);
    put_le32(image, kFat + 5 * 4, next);
    // A label where cluster `next` would start must not be reached.
    put_label_entry(image, cluster_at(7), u"unreached", 9);
    auto sb = probe(std::move(image));
    REQUIRE(sb);
    CHECK(tag(sb->tags, "LABEL") == "<absent>");
  }
}

TEST_CASE("exfat: the chain may point anywhere below 0x0FFFFFF7 without harm") {
  Image image = load_fixture("exfat-nolabel");
  fill_without_label(image, 5);
  put_le32(image, kFat + 5 * 4, 0x0FFFFFF6);  // far beyond the device
  auto sb = probe(std::move(image));
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "<absent>");
}

TEST_CASE("exfat: label is cut at 11 characters and at U+0000") {
  Image image = load_fixture("exfat-nolabel");
  put_label_entry(image, kRoot, u"abcdefghijk", 15);  // count beyond 11
  auto sb = probe(image);
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "abcdefghijk");

  put_label_entry(image, kRoot, u"abcdefghijk", 3);
  sb = probe(image);
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "abc");

  put_le16(image, kRoot + 2 + 2 * 1, 0);  // "a\0c"
  sb = probe(image);
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "a");
}

TEST_CASE("exfat: surrogate pairs in the label become one UTF-8 character") {
  // blkid 2.38.1 printed x, U+1F600 (F0 9F 98 80), y for this entry.
  Image image = load_fixture("exfat-nolabel");
  put_label_entry(image, kRoot, u"x\xD83D\xDE00y", 4);
  auto sb = probe(std::move(image));
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "x\xF0\x9F\x98\x80y");
}

TEST_CASE("exfat: end of directory before any label") {
  Image image = load_fixture("exfat-unicode");
  put_u8(image, kRoot, 0x00);
  auto sb = probe(std::move(image));
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "<absent>");
}

TEST_CASE("exfat: the first label entry wins") {
  Image image = load_fixture("exfat-unicode");
  put_label_entry(image, kRoot + 3 * 32, u"second", 6);  // after bitmap and upcase entries
  auto sb = probe(std::move(image));
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == kUnicodeLabel);
}

TEST_CASE("exfat: zero serial gives no UUID, VERSION is major.minor") {
  Image image = load_fixture("exfat-unicode");
  put_le32(image, 100, 0);
  put_u8(image, 104, 7);   // minor
  put_u8(image, 105, 2);   // major
  resign(image);
  auto sb = probe(std::move(image));
  REQUIRE(sb);
  CHECK(tag(sb->tags, "UUID") == "<absent>");
  CHECK(tag(sb->tags, "VERSION") == "2.7");
}

TEST_CASE("exfat: truncated images") {
  // Inside the boot region: not exFAT.
  for (std::size_t cut : {std::size_t{100}, std::size_t{511}, std::size_t{512 + 100},
                          std::size_t{12 * 512 - 1}}) {
    INFO(cut);
    Image image = load_fixture("exfat-unicode");
    image.resize(cut);
    CHECK_FALSE(probe(std::move(image)));
  }
  // Before or inside the root directory: exFAT without a label, as blkid.
  for (std::size_t cut : {std::size_t{12 * 512}, kRoot, kRoot + 20}) {
    INFO(cut);
    Image image = load_fixture("exfat-unicode");
    image.resize(cut);
    auto sb = probe(std::move(image));
    REQUIRE(sb);
    CHECK(tag(sb->tags, "LABEL") == "<absent>");
    CHECK(tag(sb->tags, "UUID") == "1234-ABCD");
  }
  // 4 KiB sectors cut inside their 48 KiB boot region.
  Image image = load_fixture("exfat-4k");
  image.resize(12 * 4096 - 1);
  DebugLog log;
  CHECK_FALSE(probe(image, &log));
  CHECK(log.mentions("boot region"));
}

TEST_CASE("exfat: works without a debug sink") {
  Image image = load_fixture("exfat-unicode");
  image.at(700) ^= std::byte{0x01};
  MemorySource source(std::move(image));
  CHECK_FALSE(probe_exfat(source, {}));
}

TEST_CASE("exfat: random bytes never match and never crash") {
  std::mt19937_64 rng(424242);
  auto byte = [&] { return std::byte(static_cast<std::uint8_t>(rng())); };
  // Plain noise, with and without the magic.
  for (int round = 0; round < 200; ++round) {
    Image image(8192);
    for (std::byte& b : image) b = byte();
    if (round % 2) put_text(image, 3, "EXFAT   ");
    CHECK_FALSE(probe(std::move(image)));
  }
  // A boot sector that passes every field check over random sectors 1..11.
  Image base = load_fixture("exfat-unicode");
  for (int round = 0; round < 200; ++round) {
    Image image = base;
    for (std::size_t i = 512; i < 12 * 512; ++i) image[i] = byte();
    CHECK_FALSE(probe(std::move(image)));
  }
}

TEST_CASE("exfat: random geometry and directories never crash") {
  // Signed boot sectors with random FAT/heap/root fields and random
  // directory and FAT contents: any answer but a crash or a hang will do.
  std::mt19937_64 rng(777);
  Image base = load_fixture("exfat-unicode");
  for (int round = 0; round < 300; ++round) {
    Image image = base;
    auto r32 = [&] { return static_cast<std::uint32_t>(rng()); };
    if (round % 3 == 0) put_le32(image, 80, 24 + r32() % 64);
    if (round % 3 == 1) put_le32(image, 88, r32() % 4096);
    put_le32(image, 92, r32() % 0x10000);
    put_le32(image, 96, 2 + r32() % 300);
    put_u8(image, 109, static_cast<std::uint8_t>(r32() % 17));
    for (std::size_t i = kFat; i < kFat + 4096; ++i) image[i] = std::byte(static_cast<std::uint8_t>(rng()));
    for (std::size_t i = kRoot; i < kRoot + 4096; ++i)
      image[i] = std::byte(static_cast<std::uint8_t>(rng() % 4 == 0 ? 0x83 : rng()));
    resign(image);
    DebugLog log;
    MemorySource source(std::move(image));
    std::optional<Superblock> sb;
    REQUIRE_NOTHROW(sb = probe_exfat(source, log.sink()));
    CHECK(source.reads() <= 2 + 2 * 512);
    if (sb) {
      CHECK(sb->type == "exfat");
    }
  }
}

}  // namespace diskgate::probe
