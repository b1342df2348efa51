// probe_gpt against fixtures/images/pt-gpt (made by fixtures/unit-pt.sh) and
// hand-made corruptions of it. Expected values are what blkid 2.38.1 printed
// (blkid -p on the image and on its loop partitions, partx --show for the
// partition list) for the same bytes.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <random>

#include "probe/checksums.h"
#include "probe/temp_image.h"
#include "probe/test_support.h"

using namespace diskgate::probe;
using testing::Image;

namespace {

constexpr std::size_t kSector = 512;
constexpr std::size_t kPrimary = kSector;  // header at LBA 1

using Result = testing::TableProbe;
Result probe(const Image& image) { return testing::probe_table(image, probe_gpt); }

Image fixture() { return testing::load_fixture("pt-gpt"); }
std::size_t backup_offset(const Image& image) { return (image.size() / kSector - 1) * kSector; }
std::size_t entry_offset(const Image& image, std::size_t header, std::size_t index) {
  return static_cast<std::size_t>(testing::get_le32(image, header + 72)) * kSector + index * 128;
}

std::uint32_t crc(const Image& image, std::size_t offset, std::size_t length) {
  return crc32_ieee(Bytes(image).subspan(offset, length));
}

// Recomputes the entry-array CRC (optionally) and the header CRC of the
// header at `header`, so that a test changes exactly the field it means to.
void reseal(Image& image, std::size_t header, bool array = true) {
  if (array) {
    std::size_t count = testing::get_le32(image, header + 80);
    std::size_t size = testing::get_le32(image, header + 84);
    testing::put_le32(image, header + 88, crc(image, entry_offset(image, header, 0), count * size));
  }
  std::size_t header_size = testing::get_le32(image, header + 12);
  testing::put_le32(image, header + 16, 0);
  testing::put_le32(image, header + 16, crc(image, header, header_size));
}

// Applies `change` to the primary and backup header (or their entries) alike.
template <typename Change>
void change_both(Image& image, Change change, bool array = true) {
  for (std::size_t header : {kPrimary, backup_offset(image)}) {
    change(header);
    reseal(image, header, array);
  }
}

void put_name(Image& image, std::size_t entry, std::initializer_list<std::uint16_t> units) {
  for (std::size_t i = 0; i < 36; ++i) testing::put_le16(image, entry + 56 + 2 * i, 0);
  std::size_t i = 0;
  for (std::uint16_t unit : units) testing::put_le16(image, entry + 56 + 2 * i++, unit);
}

const char* kDiskGuid = "8c2b1a4e-3d5f-4a6b-9c7d-0e1f2a3b4c5d";  // blkid: PTUUID

// The three partitions of pt-gpt as blkid -p printed them on /dev/loop0p1,2,4.
std::vector<PartitionEntry> fixture_entries() {
  return {
      {1, 2048, 512, "0fc63daf-8483-4772-8e79-3d69d8477de4", "11111111-2222-4333-8444-555566667777",
       "root", 0},
      {2, 2560, 256, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeffff0000",
       "\xC3\x9Cn\xC3\xAF" "c\xC3\xB8" "d\xC3\xA9 \xE2\x82\xAC",  // "Ünïcødé €"
       0x9000000000000005ull},
      {4, 3072, 900, "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "01234567-89ab-4def-8123-456789abcdef", "", 0},
  };
}

std::vector<unsigned> numbers(const PartitionTable& table) {
  std::vector<unsigned> result;
  for (const PartitionEntry& entry : table.entries) result.push_back(entry.number);
  return result;
}

bool is_pmbr_only(const Result& result) {
  return result.table && result.table->type == "PMBR" && result.table->id.empty() &&
         result.table->entries.empty();
}

}  // namespace

TEST_CASE("pt-gpt: table, disk GUID and entries as blkid reports them") {
  Result result = probe(fixture());
  REQUIRE(result.table);
  CHECK(result.table->type == "gpt");  // blkid: PTTYPE=gpt
  CHECK(result.table->id == kDiskGuid);
  CHECK(result.table->entries == fixture_entries());
  CHECK(result.log.lines.empty());
}

TEST_CASE("pt-gpt: one read for sectors 0-1 and one for the entry array") {
  Result result = probe(fixture());
  REQUIRE(result.table);
  CHECK(result.reads == 2);
}

TEST_CASE("pt-gpt: through FileSource a 1 GiB disk costs 3 reads and 24 KiB") {
  // All probers, as diskgatectl runs them: the head (8 KiB, holding the
  // headers and the first entries), btrfs' 64 KiB, and only the part of the
  // 16 KiB entry array at 1 KiB that the head did not hold (8..20 KiB).
  testing::TempImage file(fixture(), testing::kOneGiB);
  FileSource source(file.path());
  Report report = probe_source(source, {});
  REQUIRE(report.table);
  CHECK(report.table->type == "gpt");
  CHECK(report.table->entries == fixture_entries());
  CHECK(source.read_calls() == 3);
  CHECK(source.bytes_read() == 8192 + 4096 + 12288);
}

// ------------------------------------------------------------ FileSource
// Its reading rules, here because GPT's entry array is what they serve.

std::string text(Bytes bytes) { return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()); }

TEST_CASE("FileSource: whole blocks, 8 KiB at the head, each block read once") {
  Image image(40000);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = std::byte(static_cast<std::uint8_t>(i * 7 + i / 251));
  const std::string want(reinterpret_cast<const char*>(image.data()), image.size());
  testing::TempImage file(image);
  FileSource source(file.path());
  CHECK(source.size() == 40000);

  CHECK(text(source.read(100, 10)) == want.substr(100, 10));
  CHECK(source.read_calls() == 1);
  CHECK(source.bytes_read() == 8192);
  // Inside what was read: free.
  CHECK(text(source.read(0, 8192)) == want.substr(0, 8192));
  CHECK(source.read_calls() == 1);
  // Overlapping the head: only blocks 2..4 are read, the span is whole.
  CHECK(text(source.read(1024, 16384)) == want.substr(1024, 16384));
  CHECK(source.read_calls() == 2);
  CHECK(source.bytes_read() == 8192 + 12288);
  // A block further on, then a range spanning a cached block and two gaps.
  CHECK(text(source.read(24576 + 5, 10)) == want.substr(24576 + 5, 10));
  CHECK(source.bytes_read() == 8192 + 12288 + 4096);
  CHECK(text(source.read(18000, 16000)) == want.substr(18000, 16000));
  CHECK(source.read_calls() == 5);  // 20480..24576 and 28672..36864
  CHECK(source.bytes_read() == 8192 + 12288 + 4096 + 4096 + 8192);
  // The device end clips the span and the block.
  CHECK(text(source.read(39990, 100)) == want.substr(39990, 10));
  CHECK(source.bytes_read() == 8192 + 12288 + 4096 + 4096 + 8192 + (40000 - 36864));
  CHECK(source.read(40000, 10).empty());
  CHECK(source.read(1 << 30, 10).empty());
  CHECK(text(source.read(0, 40000)) == want);
  CHECK(source.read_calls() == 6);
  CHECK(source.bytes_read() == 40000);
}

TEST_CASE("FileSource: spans stay valid after later reads") {
  Image image(100000);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = std::byte(static_cast<std::uint8_t>(i % 253));
  testing::TempImage file(image);
  FileSource source(file.path());
  Bytes first = source.read(50000, 100);
  std::vector<Bytes> later;
  for (std::uint64_t at = 0; at < 100000; at += 3000) later.push_back(source.read(at, 5000));
  CHECK(text(first) == text(Bytes(image).subspan(50000, 100)));
  for (std::size_t i = 0; i < later.size(); ++i) {
    std::size_t at = i * 3000;
    CHECK(text(later[i]) == text(Bytes(image).subspan(at, std::min<std::size_t>(5000, 100000 - at))));
  }
}

TEST_CASE("a header CRC mismatch falls back to a good backup header") {
  Image image = fixture();
  image[kPrimary + 60] ^= std::byte{0xFF};  // a disk GUID byte: the CRC no longer matches
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->type == "gpt");  // blkid: PTUUID unchanged, from the backup
  CHECK(result.table->id == kDiskGuid);
  CHECK(result.table->entries == fixture_entries());
  CHECK(result.log.mentions("primary header at LBA 1: header CRC mismatch"));
  CHECK(result.reads == 3);  // sectors 0-1, backup header, backup entry array
}

TEST_CASE("a header CRC mismatch without a good backup leaves only the protective MBR") {
  Image image = fixture();
  image[kPrimary + 60] ^= std::byte{0xFF};
  image[backup_offset(image) + 60] ^= std::byte{0xFF};
  Result result = probe(image);
  CHECK(is_pmbr_only(result));  // blkid: PTTYPE=PMBR, no PTUUID
  CHECK(result.log.mentions("backup header at LBA 4095: header CRC mismatch"));
}

TEST_CASE("a zeroed primary header falls back to the backup") {
  Image image = fixture();
  std::fill(image.begin() + kPrimary, image.begin() + 2 * kPrimary, std::byte{0});
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->type == "gpt");  // blkid: PTTYPE=gpt, same PTUUID
  CHECK(result.table->entries == fixture_entries());
}

TEST_CASE("an entry-array CRC mismatch falls back to the backup") {
  Image image = fixture();
  image[entry_offset(image, kPrimary, 0) + 56] ^= std::byte{0x01};  // "root" -> "soot"
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->entries == fixture_entries());  // blkid: name still "root"
  CHECK(result.log.mentions("entry array CRC mismatch"));

  image[entry_offset(image, backup_offset(image), 0) + 56] ^= std::byte{0x01};
  CHECK(is_pmbr_only(probe(image)));  // blkid: PTTYPE=PMBR
}

TEST_CASE("the primary header wins when both are good") {
  Image image = fixture();
  for (int i = 0; i < 16; ++i) testing::put_u8(image, kPrimary + 56 + i, static_cast<std::uint8_t>(i));
  reseal(image, kPrimary, false);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->id == "03020100-0504-0706-0809-0a0b0c0d0e0f");  // blkid: PTUUID
}

TEST_CASE("a zero disk GUID gives no PTUUID") {
  Image image = fixture();
  change_both(image, [&](std::size_t h) { std::fill_n(image.begin() + h + 56, 16, std::byte{0}); }, false);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->type == "gpt");  // blkid: PTTYPE=gpt only
  CHECK(result.table->id.empty());
  CHECK(result.table->entries.size() == 3);
}

TEST_CASE("primary header faults that blkid checks send it to the backup") {
  // The primary gets its own disk GUID, so a wrongly accepted primary shows.
  auto primary_with = [](auto change) {
    Image image = fixture();
    testing::put_u8(image, kPrimary + 56, 0x42);
    change(image);
    reseal(image, kPrimary, false);
    return probe(image);
  };
  auto uses_backup = [](const Result& result) {
    return result.table && result.table->type == "gpt" && result.table->id == kDiskGuid &&
           result.table->entries == fixture_entries();
  };
  SECTION("MyLBA is not 1") {
    Result r = primary_with([](Image& i) { testing::put_le64(i, kPrimary + 24, 2); });
    CHECK(uses_backup(r));
    CHECK(r.log.mentions("MyLBA is 2"));
  }
  SECTION("first usable LBA above last usable") {
    CHECK(uses_backup(primary_with([](Image& i) {
      testing::put_le64(i, kPrimary + 40, 100);
      testing::put_le64(i, kPrimary + 48, 50);
    })));
  }
  SECTION("last usable LBA past the device") {
    CHECK(uses_backup(primary_with([](Image& i) { testing::put_le64(i, kPrimary + 48, 4096); })));
  }
  SECTION("header inside the usable area") {
    CHECK(uses_backup(primary_with([](Image& i) {
      testing::put_le64(i, kPrimary + 40, 0);
      testing::put_le64(i, kPrimary + 48, 4000);
    })));
  }
  SECTION("entry array past the device") {
    Result r = primary_with([](Image& i) { testing::put_le64(i, kPrimary + 72, 4090); });
    CHECK(uses_backup(r));
    CHECK(r.log.mentions("entry array beyond the end"));
  }
  SECTION("entry array LBA so large that the byte offset wraps") {
    CHECK_NOTHROW(primary_with([](Image& i) { testing::put_le64(i, kPrimary + 72, ~0ull); }));
  }
}

TEST_CASE("header size: 92..512 accepted, others rejected") {
  auto with_size = [](std::uint32_t size) {
    Image image = fixture();
    change_both(image, [&](std::size_t h) { testing::put_le32(image, h + 12, size); }, false);
    return probe(image);
  };
  for (std::uint32_t size : {92u, 93u, 512u}) {
    Result result = with_size(size);
    REQUIRE(result.table);
    CHECK(result.table->type == "gpt");  // blkid: gpt (93, 512)
  }
  Result small = with_size(91);
  CHECK(is_pmbr_only(small));  // blkid: PMBR
  CHECK(small.log.mentions("header size 91 out of range"));
  CHECK(is_pmbr_only(with_size(513)));  // blkid: PMBR
}

TEST_CASE("entry count and size: absurd values are rejected without a huge read") {
  auto with = [](std::uint32_t count, std::uint32_t size) {
    Image image = fixture();
    change_both(image, [&](std::size_t h) {
      testing::put_le32(image, h + 80, count);
      testing::put_le32(image, h + 84, size);
    }, false);  // the array CRC stays that of the real array
    return probe(image);
  };
  Result huge = with(0x00FFFFFF, 128);
  CHECK(is_pmbr_only(huge));
  CHECK(huge.log.mentions("entry count 16777215 too large"));
  CHECK(is_pmbr_only(with(0xFFFFFFFF, 0xFFFFFFFF)));
  Result wide = with(64, 256);
  CHECK(is_pmbr_only(wide));  // blkid: PMBR (entry size must be 128)
  CHECK(wide.log.mentions("64 entries of 256 bytes"));
  CHECK(is_pmbr_only(with(0, 128)));  // blkid: PMBR
  CHECK(is_pmbr_only(with(8193, 128)));  // over our 1 MiB cap
}

TEST_CASE("entry count: fewer or more entries, each covered by the array CRC") {
  auto with_count = [](std::uint32_t count) {
    Image image = fixture();
    change_both(image, [&](std::size_t h) { testing::put_le32(image, h + 80, count); });
    return probe(image);
  };
  Result one = with_count(1), four = with_count(4), more = with_count(200);
  REQUIRE((one.table && four.table && more.table));
  CHECK(numbers(*one.table) == std::vector<unsigned>{1});       // blkid (partx): 1
  CHECK(numbers(*four.table) == std::vector<unsigned>{1, 2, 4});  // blkid: 1 2 4
  CHECK(more.table->entries == fixture_entries());               // blkid: 1 2 4
  CHECK(more.reads == 2);
}

TEST_CASE("entries outside the usable area are skipped but keep their number") {
  Image image = fixture();
  change_both(image, [&](std::size_t h) {
    testing::put_le64(image, entry_offset(image, h, 0) + 32, 10);   // starts before first usable (34)
    testing::put_le64(image, entry_offset(image, h, 0) + 40, 100);
    testing::put_le64(image, entry_offset(image, h, 1) + 32, 4000);  // ends after last usable (4062)
    testing::put_le64(image, entry_offset(image, h, 1) + 40, 4100);
  });
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(numbers(*result.table) == std::vector<unsigned>{4});  // blkid (partx): only 4
  CHECK(result.log.mentions("entry 1 (10..100) outside the usable area"));
}

TEST_CASE("an entry ending before it starts gets blkid's wrapped size") {
  Image image = fixture();
  change_both(image, [&](std::size_t h) { testing::put_le64(image, entry_offset(image, h, 0) + 40, 2000); });
  Result result = probe(image);
  REQUIRE(result.table);
  REQUIRE(result.table->entries.size() == 3);
  CHECK(result.table->entries[0].start == 2048);
  CHECK(result.table->entries[0].size == 18446744073709551569ull);  // blkid (partx): SECTORS
}

TEST_CASE("names: trailing white space trimmed, surrogate pairs, all 36 units") {
  auto with_name = [](std::initializer_list<std::uint16_t> units) {
    Image image = fixture();
    change_both(image, [&](std::size_t h) { put_name(image, entry_offset(image, h, 0), units); });
    Result result = probe(image);
    REQUIRE(result.table);
    return result.table->entries.at(0).name;
  };
  CHECK(with_name({'a', 'b', ' ', 'c', ' ', ' ', '\t'}) == "ab c");  // blkid: "ab c"
  CHECK(with_name({'a', 0xD83D, 0xDE00}) == "a\xF0\x9F\x98\x80");     // blkid: "a😀"
  std::initializer_list<std::uint16_t> full{'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L',
                                             'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X',
                                             'Y', 'Z', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'};
  CHECK(with_name(full) == "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ");  // blkid: no NUL needed
  CHECK(with_name({'x', 0, 'y'}) == "x");
}

TEST_CASE("without a protective MBR there is no GPT") {
  SECTION("no 55 AA") {
    Image image = fixture();
    testing::put_u8(image, 510, 0);
    Result result = probe(image);
    CHECK_FALSE(result.table);  // blkid: nothing
    CHECK(result.log.mentions("no protective MBR"));
  }
  SECTION("no entry of type 0xEE") {
    Image image = fixture();
    testing::put_u8(image, 446 + 4, 0x83);
    CHECK_FALSE(probe(image).table);  // blkid: PTTYPE=dos, from the MBR prober
  }
}

TEST_CASE("a hybrid MBR: 0xEE in the second slot, a bootable first slot") {
  Image image = fixture();
  std::copy_n(image.begin() + 446, 16, image.begin() + 462);
  const std::uint8_t first[16] = {0x80, 0, 0, 0, 0x83, 0, 0, 0, 0x40, 0, 0, 0, 0x10, 0, 0, 0};
  for (int i = 0; i < 16; ++i) testing::put_u8(image, 446 + i, first[i]);
  Result result = probe(image);
  REQUIRE(result.table);
  CHECK(result.table->type == "gpt");  // blkid: gpt
  CHECK(result.table->entries == fixture_entries());
}

TEST_CASE("truncated images") {
  Image full = fixture();
  auto cut = [&](std::size_t size) { return probe(Image(full.begin(), full.begin() + size)); };
  CHECK_FALSE(cut(0).table);
  CHECK_FALSE(cut(511).table);
  // blkid: PTTYPE=PMBR for 1024, 8192, 17408, 17920 and 1 MiB: the backup
  // header is gone and the primary's last usable LBA lies past the end.
  for (std::size_t size : {1024u, 8192u, 17408u, 17920u, 1u << 20}) {
    INFO("size " << size);
    CHECK(is_pmbr_only(cut(size)));
  }
  // blkid: gpt with all three partitions; the primary is intact.
  for (std::size_t size : {2096640u, 2097151u}) {
    Result result = cut(size);
    REQUIRE(result.table);
    CHECK(result.table->entries == fixture_entries());
  }
  for (std::size_t size = 0; size < 20000; size += 97) CHECK_NOTHROW(cut(size));
}

TEST_CASE("random bytes never make a GPT and never throw") {
  std::mt19937_64 random(20240601);
  for (int round = 0; round < 300; ++round) {
    Image image(64 * 1024);
    for (std::byte& b : image) b = static_cast<std::byte>(random() & 0xFF);
    // Half the rounds get past the protective-MBR and signature gates.
    if (round % 2) {
      testing::put_u8(image, 510, 0x55);
      testing::put_u8(image, 511, 0xAA);
      testing::put_u8(image, 446 + 4, 0xEE);
      testing::put_text(image, kPrimary, "EFI PART");
      testing::put_text(image, image.size() - kSector, "EFI PART");
    }
    Result result;
    REQUIRE_NOTHROW(result = probe(image));
    CHECK((!result.table || is_pmbr_only(result)));
    CHECK(result.reads <= 4);
  }
}

TEST_CASE("random header fields behind valid CRCs never throw") {
  std::mt19937_64 random(7);
  Image base = fixture();
  for (int round = 0; round < 300; ++round) {
    Image image = base;
    for (std::size_t field : {24u, 40u, 48u, 72u}) testing::put_le64(image, kPrimary + field, random() % 8192);
    testing::put_le32(image, kPrimary + 80, static_cast<std::uint32_t>(random() % 300));
    testing::put_le32(image, kPrimary + 12, static_cast<std::uint32_t>(80 + random() % 450));
    reseal(image, kPrimary, false);
    Result result;
    REQUIRE_NOTHROW(result = probe(image));
    REQUIRE(result.table);  // the good backup or the primary
    CHECK((result.table->type == "gpt"));
  }
}

TEST_CASE("an I/O error propagates") {
  struct FailingSource : Source {
    std::uint64_t size() const override { return 1 << 20; }
    Bytes read(std::uint64_t, std::size_t) override { throw IoError("read failed", 5); }
  } source;
  CHECK_THROWS_AS(probe_gpt(source, nullptr), IoError);
}
