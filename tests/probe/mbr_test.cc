// probe_mbr against fixtures/images/pt-mbr and pt-fat (made by
// fixtures/unit-pt.sh) and hand-made changes to them. Expected values are
// what blkid 2.38.1 printed for the same bytes (blkid -p on the image and on
// its loop partitions, partx --show for the partition list).
#include <catch2/catch.hpp>
#include <random>

#include "probe/test_support.h"

using namespace diskgate::probe;
using testing::Image;

namespace {

constexpr std::size_t kSector = 512;
constexpr std::size_t kEbr1 = 1024 * kSector;  // first EBR, at the extended partition's start
constexpr std::size_t kEbr2 = 1599 * kSector;  // second EBR (link: 575 sectors after kEbr1)

using Result = testing::TableProbe;
Result probe(const Image& image) { return testing::probe_table(image, probe_mbr); }

Image fixture() { return testing::load_fixture("pt-mbr"); }

// Sets fields of entry `index` of the table in the sector at `sector`.
void put_entry(Image& image, std::size_t sector, std::size_t index, std::uint8_t boot, std::uint8_t type,
               std::uint32_t start, std::uint32_t size) {
  std::size_t at = sector + 446 + 16 * index;
  testing::put_u8(image, at, boot);
  testing::put_u8(image, at + 4, type);
  testing::put_le32(image, at + 8, start);
  testing::put_le32(image, at + 12, size);
}
void put_type(Image& image, std::size_t sector, std::size_t index, std::uint8_t type) {
  testing::put_u8(image, sector + 446 + 16 * index + 4, type);
}

// blkid -p on /dev/loop0p1..p6 of pt-mbr (p2 does not exist).
std::vector<PartitionEntry> fixture_entries() {
  return {
      {1, 64, 256, "0x83", "5eedc0de-01", "", 0x80},
      {3, 512, 128, "0xc", "5eedc0de-03", "", 0},
      {4, 1024, 2048, "0x5", "5eedc0de-04", "", 0},
      {5, 1088, 256, "0x82", "5eedc0de-05", "", 0},
      {6, 1600, 512, "0x83", "5eedc0de-06", "", 0},
  };
}

struct Brief {
  unsigned number;
  std::uint64_t start, size;
  bool operator==(const Brief&) const = default;
};
std::vector<Brief> brief(const PartitionTable& table) {
  std::vector<Brief> result;
  for (const PartitionEntry& e : table.entries) result.push_back({e.number, e.start, e.size});
  return result;
}
// The fixture's partitions as partx lists them: number, start, sectors.
const std::vector<Brief> kFixture{{1, 64, 256}, {3, 512, 128}, {4, 1024, 2048}, {5, 1088, 256}, {6, 1600, 512}};

std::vector<Brief> plus(std::vector<Brief> list, std::initializer_list<Brief> more) {
  list.insert(list.end(), more);
  return list;
}

// A 4 MiB image whose sector 0 is a hand-made NTFS boot sector (blkid -p:
// TYPE=ntfs, no PTTYPE); without the "FILE" of MFT record 3 blkid says
// PTTYPE=dos instead.
Image ntfs_image(bool record3) {
  Image image(4 << 20);
  testing::put_u8(image, 0, 0xEB);
  testing::put_u8(image, 1, 0x52);
  testing::put_u8(image, 2, 0x90);
  testing::put_text(image, 3, "NTFS    ");
  testing::put_le16(image, 0x0B, 512);
  testing::put_u8(image, 0x0D, 8);
  testing::put_u8(image, 0x15, 0xF8);
  testing::put_le64(image, 0x28, 8191);  // sectors
  testing::put_le64(image, 0x30, 4);     // MFT cluster
  testing::put_le64(image, 0x38, 2);     // MFT mirror cluster
  testing::put_u8(image, 0x40, 0xF6);    // 2^10-byte MFT records
  testing::put_le16(image, 510, 0xAA55);
  testing::put_text(image, 4 * 8 * 512, "FILE");
  if (record3) testing::put_text(image, 4 * 8 * 512 + 3 * 1024, "FILE");
  return image;
}

// A 1 MiB image with a hand-made exFAT boot region (12 sectors) whose boot
// checksum is right unless `good_checksum` is false.
Image exfat_image(bool good_checksum) {
  Image image(1 << 20);
  testing::put_u8(image, 0, 0xEB);
  testing::put_u8(image, 1, 0x76);
  testing::put_u8(image, 2, 0x90);
  testing::put_text(image, 3, "EXFAT   ");
  testing::put_le64(image, 72, 2048);  // volume length
  testing::put_le32(image, 80, 128);   // FAT offset
  testing::put_le32(image, 84, 8);     // FAT length
  testing::put_le32(image, 88, 256);   // cluster heap offset
  testing::put_le32(image, 92, 400);   // cluster count
  testing::put_le32(image, 96, 4);     // root directory cluster
  testing::put_le32(image, 100, 0x1234ABCD);
  testing::put_le16(image, 104, 0x0100);
  testing::put_u8(image, 108, 9);   // 512-byte sectors
  testing::put_u8(image, 109, 3);   // 4 KiB clusters
  testing::put_u8(image, 110, 1);   // one FAT
  testing::put_le16(image, 510, 0xAA55);
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < 11 * kSector; ++i) {
    if (i == 106 || i == 107 || i == 112) continue;
    sum = ((sum & 1) ? 0x80000000u : 0u) + (sum >> 1) + std::to_integer<std::uint32_t>(image[i]);
  }
  if (!good_checksum) sum ^= 1;
  for (std::size_t at = 11 * kSector; at < 12 * kSector; at += 4) testing::put_le32(image, at, sum);
  return image;
}

}  // namespace

TEST_CASE("pt-mbr: primaries, the extended partition and logicals as blkid reports them") {
  Result result = probe(fixture());
  REQUIRE(result.table);
  CHECK(result.table->type == "dos");      // blkid: PTTYPE=dos
  CHECK(result.table->id == "5eedc0de");   // blkid: PTUUID
  CHECK(result.table->entries == fixture_entries());
  CHECK(result.log.lines.empty());
}

TEST_CASE("pt-mbr: one read for sector 0 and one per EBR") {
  Result result = probe(fixture());
  REQUIRE(result.table);
  CHECK(result.reads == 3);
}

TEST_CASE("a disk id of 0 gives no PTUUID and no partition UUIDs") {
  Image image = fixture();
  testing::put_le32(image, 440, 0);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->id.empty());  // blkid: PTTYPE=dos only; no PART_ENTRY_UUID
  for (const PartitionEntry& entry : result.table->entries) CHECK(entry.uuid.empty());
  CHECK(brief(*result.table) == kFixture);
}

TEST_CASE("a boot indicator other than 0x00 or 0x80 means no table") {
  Image image = fixture();
  testing::put_u8(image, 446 + 2 * 16, 0x12);
  Result result = probe(image);
  CHECK_FALSE(result.table);  // blkid: nothing
  CHECK(result.log.mentions("entry 3 has boot indicator 0x12"));
}

TEST_CASE("an odd boot indicator on a logical partition is kept as its flags") {
  Image image = fixture();
  testing::put_u8(image, kEbr1 + 446, 0x33);
  Result result = probe(image);
  REQUIRE(result.table);
  REQUIRE(result.table->entries.size() == 5);
  CHECK(result.table->entries[3].flags == 0x33);  // blkid (partx): FLAGS 0x33 on 5
}

TEST_CASE("GPT's protective MBR is not a DOS table") {
  Result result = probe(testing::load_fixture("pt-gpt"));
  CHECK_FALSE(result.table);  // blkid: PTTYPE=gpt from the GPT prober
  CHECK(result.log.mentions("type 0xee"));
}

TEST_CASE("0xEE inside an EBR is an ordinary logical partition") {
  Image image = fixture();
  put_type(image, kEbr1, 0, 0xEE);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->entries.at(3).type == "0xee");  // blkid (partx): 5 is 0xee
}

TEST_CASE("no 55 AA, AIX boot block, short device: no table") {
  Image image = fixture();
  testing::put_u8(image, 511, 0);
  CHECK_FALSE(probe(image).table);

  image = fixture();
  testing::put_text(image, 0, "\xC9\xC2\xD4\xC1");
  Result aix = probe(image);
  CHECK_FALSE(aix.table);  // blkid: PTTYPE=aix, from its AIX prober
  CHECK(aix.log.mentions("AIX"));

  Image full = fixture();
  CHECK_FALSE(probe(Image(full.begin(), full.begin() + 511)).table);
}

TEST_CASE("empty slots keep their number; the type alone does not empty a slot") {
  Image image = fixture();
  put_entry(image, 0, 1, 0, 0x00, 400, 50);
  Result type0 = probe(image);
  REQUIRE(type0.table);
  CHECK(brief(*type0.table) == std::vector<Brief>{{1, 64, 256}, {2, 400, 50}, {3, 512, 128},
                                                   {4, 1024, 2048}, {5, 1088, 256}, {6, 1600, 512}});
  CHECK(type0.table->entries[1].type == "0x0");  // blkid (partx): TYPE 0x0

  image = fixture();
  put_entry(image, 0, 1, 0, 0x83, 400, 0);
  Result size0 = probe(image);
  REQUIRE(size0.table);
  CHECK(brief(*size0.table) == kFixture);  // blkid: slot 2 still absent
}

TEST_CASE("extended partition types 0x05, 0x0f and 0x85 are all followed") {
  for (std::uint8_t type : {0x0F, 0x85}) {
    Image image = fixture();
    put_type(image, 0, 3, type);
    Result result = probe(image);
    REQUIRE(result.table);
    CHECK(brief(*result.table) == kFixture);  // blkid (partx): 5 and 6 found
  }
  Image image = fixture();
  put_type(image, 0, 3, 0x83);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->entries.size() == 3);  // not extended: no logicals
}

TEST_CASE("an extended partition at sector 0 is not followed") {
  Image image = fixture();
  testing::put_le32(image, 446 + 3 * 16 + 8, 0);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(brief(*result.table) == std::vector<Brief>{{1, 64, 256}, {3, 512, 128}, {4, 0, 2048}});  // blkid
  CHECK(result.log.mentions("sector 0"));
}

TEST_CASE("an EBR chain that loops ends with the partitions found so far") {
  SECTION("EBR 2 links to itself") {
    Image image = fixture();
    put_entry(image, kEbr2, 1, 0, 0x05, 575, 513);
    Result result = probe(image);
    REQUIRE(result.table);
    CHECK(brief(*result.table) == kFixture);  // blkid (partx): 1 3 4 5 6
    CHECK(result.log.mentions("loops"));
    CHECK(result.reads <= 4);
  }
  SECTION("EBR 2 links back to the start of the extended partition") {
    Image image = fixture();
    put_entry(image, kEbr2, 1, 0, 0x05, 0, 513);
    Result result = probe(image);
    REQUIRE(result.table);
    CHECK(brief(*result.table) == kFixture);  // blkid (partx): 1 3 4 5 6
  }
  SECTION("EBR 2 -> EBR 3 -> EBR 2") {
    Image image = fixture();
    std::size_t ebr3 = (1024 + 700) * kSector;
    put_entry(image, kEbr2, 1, 0, 0x05, 700, 100);
    testing::put_le16(image, ebr3 + 510, 0xAA55);
    put_entry(image, ebr3, 0, 0, 0x83, 10, 5);
    put_entry(image, ebr3, 1, 0, 0x05, 575, 513);
    Result result = probe(image);
    REQUIRE(result.table);
    CHECK(brief(*result.table) == plus(kFixture, {{7, 1734, 5}}));  // blkid (partx)
    CHECK(result.log.mentions("loops"));
    CHECK(result.reads <= 6);
  }
}

TEST_CASE("a chain stops after 100 EBRs in a row without a partition") {
  // Extended partition 1024..4095 with an EBR in each of its first sectors,
  // each linking to the next; data partitions only where `data` says.
  auto chain = [](int ebrs, std::initializer_list<int> data) {
    Image image = fixture();
    put_entry(image, 0, 3, 0, 0x05, 1024, 3072);
    for (int k = 0; k <= ebrs; ++k) {
      std::size_t ebr = static_cast<std::size_t>(1024 + k) * kSector;
      std::fill_n(image.begin() + ebr, kSector, std::byte{0});
      testing::put_le16(image, ebr + 510, 0xAA55);
      if (k < ebrs) put_entry(image, ebr, 1, 0, 0x05, k + 1, 1);
    }
    for (int k : data) put_entry(image, static_cast<std::size_t>(1024 + k) * kSector, 0, 0, 0x83, 976, 1);
    return probe(image);
  };
  const std::vector<Brief> primaries{{1, 64, 256}, {3, 512, 128}, {4, 1024, 3072}};
  Result gap99 = chain(150, {0, 100});
  REQUIRE(gap99.table);
  CHECK(brief(*gap99.table) == plus(primaries, {{5, 2000, 1}, {6, 2100, 1}}));  // blkid (partx)
  Result gap100 = chain(150, {0, 101});
  REQUIRE(gap100.table);
  CHECK(brief(*gap100.table) == plus(primaries, {{5, 2000, 1}}));  // blkid (partx)
}

TEST_CASE("a chain longer than 256 EBRs is cut (blkid would go on)") {
  Image image = fixture();
  put_entry(image, 0, 3, 0, 0x05, 1024, 3072);
  for (int k = 0; k <= 300; ++k) {
    std::size_t ebr = static_cast<std::size_t>(1024 + k) * kSector;
    std::fill_n(image.begin() + ebr, kSector, std::byte{0});
    testing::put_le16(image, ebr + 510, 0xAA55);
    put_entry(image, ebr, 0, 0, 0x83, 976, 1);
    if (k < 300) put_entry(image, ebr, 1, 0, 0x05, k + 1, 1);
  }
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->entries.size() == 3 + 256);  // blkid lists 301 logical partitions
  CHECK(result.table->entries.back().number == 260);
  CHECK(result.log.mentions("longer than 256"));
  CHECK(result.reads == 1 + 256);
}

TEST_CASE("third and fourth EBR entries count only inside the extended partition") {
  Image image = fixture();
  put_entry(image, kEbr1, 2, 0, 0x83, 300, 20);
  Result inside = probe(image);
  REQUIRE(inside.table);
  CHECK(brief(*inside.table) == std::vector<Brief>{{1, 64, 256}, {3, 512, 128}, {4, 1024, 2048},
                                                    {5, 1088, 256}, {6, 1324, 20}, {7, 1600, 512}});  // blkid

  image = fixture();
  put_entry(image, kEbr1, 2, 0, 0x83, 3000, 20);
  Result outside = probe(image);
  REQUIRE(outside.table);
  CHECK(brief(*outside.table) == kFixture);  // blkid
}

TEST_CASE("sector arithmetic is 32-bit and wraps as blkid's does") {
  Image image = fixture();
  testing::put_le32(image, kEbr1 + 446 + 8, 0xFFFFFF00);  // 1024 + this wraps to 768
  Result wrapped = probe(image);
  REQUIRE(wrapped.table);
  CHECK(wrapped.table->entries.at(3).start == 768);  // blkid (partx): 5 starts at 768

  image = fixture();
  put_entry(image, 0, 0, 0x80, 0x83, 0xFFFFFFF0, 0x100);
  Result huge = probe(image);
  REQUIRE(huge.table);
  CHECK(huge.table->entries.at(0).start == 4294967280u);  // blkid (partx)

  image = fixture();
  put_entry(image, 0, 3, 0, 0x05, 0xFFFFFF00, 0x1000);
  Result far = probe(image);
  REQUIRE(far.table);
  CHECK(brief(*far.table) == std::vector<Brief>{{1, 64, 256}, {3, 512, 128}, {4, 0xFFFFFF00, 0x1000}});  // blkid
}

TEST_CASE("two extended partitions: the second one's logicals are duplicates") {
  Image image = fixture();
  put_entry(image, 0, 1, 0, 0x05, 1024, 2048);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(brief(*result.table) == std::vector<Brief>{{1, 64, 256}, {2, 1024, 2048}, {3, 512, 128},
                                                    {4, 1024, 2048}, {5, 1088, 256}, {6, 1600, 512}});  // blkid
}

TEST_CASE("a chain ends at an EBR without 55 AA or past the end of the device") {
  Image image = fixture();
  testing::put_u8(image, kEbr2 + 510, 0);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(brief(*result.table) == std::vector<Brief>(kFixture.begin(), kFixture.end() - 1));  // blkid

  Image full = fixture();
  Result cut = probe(Image(full.begin(), full.begin() + kEbr2 + 100));
  REQUIRE(cut.table);
  CHECK(brief(*cut.table) == std::vector<Brief>(kFixture.begin(), kFixture.end() - 1));
  for (std::size_t size = 512; size < kEbr2 + 1024; size += 509) CHECK_NOTHROW(probe(Image(full.begin(), full.begin() + size)));
}

TEST_CASE("a FAT boot sector is not a partition table") {
  Result fat = probe(testing::load_fixture("pt-fat"));
  CHECK_FALSE(fat.table);  // blkid: TYPE=vfat, no PTTYPE
  CHECK(fat.log.mentions("FAT boot sector"));

  Image image = testing::load_fixture("pt-fat");
  testing::put_u8(image, 0x15, 0x12);  // media byte: no longer a valid FAT
  Result broken = probe(image);
  REQUIRE(broken.table);
  CHECK(broken.table->type == "dos");  // blkid: PTTYPE=dos, no partitions
  CHECK(broken.table->entries.empty());
}

TEST_CASE("an NTFS boot sector is not a partition table") {
  Result ntfs = probe(ntfs_image(true));
  CHECK_FALSE(ntfs.table);  // blkid: TYPE=ntfs, no PTTYPE
  CHECK(ntfs.log.mentions("NTFS boot sector"));
  Result no_record = probe(ntfs_image(false));
  REQUIRE(no_record.table);
  CHECK(no_record.table->type == "dos");  // blkid: PTTYPE=dos
}

TEST_CASE("an exFAT boot sector is not a partition table (blkid 2.39+)") {
  // blkid 2.38.1 reports PTTYPE=dos on exFAT; later blkid checks the boot
  // region like the exFAT prober does and reports no table.
  Result exfat = probe(exfat_image(true));
  CHECK_FALSE(exfat.table);
  CHECK(exfat.log.mentions("exFAT boot sector"));
  Result bad_sum = probe(exfat_image(false));
  REQUIRE(bad_sum.table);
  CHECK(bad_sum.table->type == "dos");
}

TEST_CASE("random bytes never crash; without 55 AA they never match") {
  std::mt19937_64 random(99);
  for (int round = 0; round < 400; ++round) {
    Image image(256 * 1024);
    for (std::byte& b : image) b = static_cast<std::byte>(random() & 0xFF);
    testing::put_le16(image, 510, 0);
    Result plain;
    REQUIRE_NOTHROW(plain = probe(image));
    CHECK_FALSE(plain.table);

    // Past the gates: a signature, sane boot flags, an extended partition
    // pointing somewhere random, and EBR signatures everywhere.
    testing::put_le16(image, 510, 0xAA55);
    for (std::size_t i = 0; i < 4; ++i) testing::put_u8(image, 446 + 16 * i, (random() & 1) ? 0x80 : 0);
    put_type(image, 0, static_cast<std::size_t>(random() % 4), 0x05);
    if (image[446 + 4] == std::byte{0xEE}) put_type(image, 0, 0, 0x83);
    for (std::size_t s = 1; s < image.size() / kSector; ++s) testing::put_le16(image, s * kSector + 510, 0xAA55);
    Result gated;
    REQUIRE_NOTHROW(gated = probe(image));
    if (gated.table) {
      CHECK(gated.table->entries.size() <= 4 + 4 * 256 * 4);  // 4 per EBR, 256 EBRs per chain
      CHECK(gated.reads <= 1 + 4 * 256 + 2);
    }
  }
}

TEST_CASE("an I/O error propagates") {
  struct FailingSource : Source {
    std::uint64_t size() const override { return 1 << 20; }
    Bytes read(std::uint64_t, std::size_t) override { throw IoError("read failed", 5); }
  } source;
  CHECK_THROWS_AS(probe_mbr(source, nullptr), IoError);
}
