// probe_vfat on images made by mkfs.vfat (fixtures/unit-ext-vfat.sh) and
// on hand-made changes of them. Expected tags are what `blkid -p -o export`
// (util-linux 2.38.1) printed for the same bytes, TYPE and USAGE aside.
#include <catch2/catch.hpp>

#include <random>

#include "probe/temp_image.h"
#include "probe/test_support.h"

namespace diskgate::probe {
namespace {

using namespace testing;

std::optional<Superblock> probe(const Image& image, DebugLog* log = nullptr) {
  return probe_superblock(image, probe_vfat, log);
}

Tags expected(std::initializer_list<Tag> tags) { return Tags(tags); }

Image truncated(const Image& image, std::size_t length) {
  return Image(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(length));
}

// FAT32 geometry of the fixtures, read back from their boot sector.
struct Fat32 {
  std::uint32_t reserved, fats, fat_length, cluster_size;
  explicit Fat32(const Image& image)
      : reserved(get_le32(image, 0x0E) & 0xFFFF),
        fats(std::to_integer<std::uint32_t>(image.at(0x10))),
        fat_length(get_le32(image, 0x24)),
        cluster_size(std::to_integer<std::uint32_t>(image.at(0x0D))) {}
  std::size_t cluster(std::uint32_t n) const { return (reserved + fats * fat_length + (n - 2) * cluster_size) * 512; }
  void link(Image& image, std::uint32_t n, std::uint32_t next) const {
    for (std::uint32_t i = 0; i < fats; ++i) put_le32(image, (reserved + i * fat_length) * 512 + n * 4, next);
  }
};

// ------------------------------------------------------------ fixtures

TEST_CASE("FAT12 floppy (a tiny device for blkid)") {
  auto found = probe(load_fixture("vfat-fat12-floppy"));
  REQUIRE(found);
  CHECK(found->type == "vfat");
  CHECK(found->usage == "filesystem");
  // blkid: SEC_TYPE=msdos LABEL_FATBOOT=FLOPPY LABEL=FLOPPY UUID=0BAD-F00D VERSION=FAT12 BLOCK_SIZE=512
  CHECK(found->tags == expected({{"SEC_TYPE", "msdos"},
                                 {"LABEL_FATBOOT", "FLOPPY"},
                                 {"LABEL", "FLOPPY"},
                                 {"UUID", "0BAD-F00D"},
                                 {"VERSION", "FAT12"},
                                 {"BLOCK_SIZE", "512"}}));
}

TEST_CASE("FAT12 with 4 KiB sectors: BLOCK_SIZE is the sector size") {
  auto found = probe(load_fixture("vfat-fat12-4k"));
  REQUIRE(found);
  // blkid: SEC_TYPE=msdos LABEL_FATBOOT=4K\ SECTORS LABEL=4K\ SECTORS UUID=4096-ABCD VERSION=FAT12 BLOCK_SIZE=4096
  CHECK(found->tags == expected({{"SEC_TYPE", "msdos"},
                                 {"LABEL_FATBOOT", "4K SECTORS"},
                                 {"LABEL", "4K SECTORS"},
                                 {"UUID", "4096-ABCD"},
                                 {"VERSION", "FAT12"},
                                 {"BLOCK_SIZE", "4096"}}));
}

TEST_CASE("FAT16 label with inner spaces and Latin-1 bytes, copied raw") {
  auto found = probe(load_fixture("vfat-fat16-latin1"));
  REQUIRE(found);
  // blkid: LABEL_FATBOOT=CAFM-I\ M-iTM-I LABEL=CAFM-I\ M-iTM-I (raw: "CAF" C9 " " E9 "T" C9)
  CHECK(found->tags == expected({{"SEC_TYPE", "msdos"},
                                 {"LABEL_FATBOOT", "CAF\xC9 \xE9T\xC9"},
                                 {"LABEL", "CAF\xC9 \xE9T\xC9"},
                                 {"UUID", "16E9-E916"},
                                 {"VERSION", "FAT16"},
                                 {"BLOCK_SIZE", "512"}}));
}

TEST_CASE("FAT16 without a label: boot sector \"NO NAME\" is no label") {
  auto found = probe(load_fixture("vfat-fat16-nolabel"));
  REQUIRE(found);
  // blkid: SEC_TYPE=msdos UUID=1600-0000 VERSION=FAT16 BLOCK_SIZE=512
  CHECK(found->tags == expected({{"SEC_TYPE", "msdos"},
                                 {"UUID", "1600-0000"},
                                 {"VERSION", "FAT16"},
                                 {"BLOCK_SIZE", "512"}}));
}

TEST_CASE("\"NO NAME\" in the root directory is reported as a label") {
  auto found = probe(load_fixture("vfat-fat16-noname"));
  REQUIRE(found);
  // blkid: SEC_TYPE=msdos LABEL=NO\ NAME UUID=1600-0001 VERSION=FAT16 BLOCK_SIZE=512
  CHECK(found->tags == expected({{"SEC_TYPE", "msdos"},
                                 {"LABEL", "NO NAME"},
                                 {"UUID", "1600-0001"},
                                 {"VERSION", "FAT16"},
                                 {"BLOCK_SIZE", "512"}}));
}

TEST_CASE("a deleted (0xE5) label entry leaves only the boot sector label") {
  auto found = probe(load_fixture("vfat-fat16-bootonly"));
  REQUIRE(found);
  // blkid: SEC_TYPE=msdos LABEL_FATBOOT=BOOT\ ONLY UUID=1600-0002 VERSION=FAT16 BLOCK_SIZE=512
  CHECK(found->tags == expected({{"SEC_TYPE", "msdos"},
                                 {"LABEL_FATBOOT", "BOOT ONLY"},
                                 {"UUID", "1600-0002"},
                                 {"VERSION", "FAT16"},
                                 {"BLOCK_SIZE", "512"}}));
}

TEST_CASE("LFN, file, volume+directory and deleted entries before the label are skipped") {
  auto found = probe(load_fixture("vfat-fat16-entries"));
  REQUIRE(found);
  // blkid: LABEL_FATBOOT=BOOT\ LABEL LABEL=M-eTIQUETTE (the leading 0x05 is 0xE5)
  CHECK(found->tags == expected({{"SEC_TYPE", "msdos"},
                                 {"LABEL_FATBOOT", "BOOT LABEL"},
                                 {"LABEL", "\xE5TIQUETTE"},
                                 {"UUID", "1600-0003"},
                                 {"VERSION", "FAT16"},
                                 {"BLOCK_SIZE", "512"}}));
}

TEST_CASE("FAT32: no SEC_TYPE, labels from the boot sector and root cluster") {
  auto found = probe(load_fixture("vfat-fat32"));
  REQUIRE(found);
  // blkid: LABEL_FATBOOT=FAT32\ VOL LABEL=FAT32\ VOL UUID=DEAD-BEEF VERSION=FAT32 BLOCK_SIZE=512
  CHECK(found->tags == expected({{"LABEL_FATBOOT", "FAT32 VOL"},
                                 {"LABEL", "FAT32 VOL"},
                                 {"UUID", "DEAD-BEEF"},
                                 {"VERSION", "FAT32"},
                                 {"BLOCK_SIZE", "512"}}));
}

TEST_CASE("FAT32 without a label") {
  auto found = probe(load_fixture("vfat-fat32-nolabel"));
  REQUIRE(found);
  // blkid: UUID=3200-0000 VERSION=FAT32 BLOCK_SIZE=512
  CHECK(found->tags == expected({{"UUID", "3200-0000"}, {"VERSION", "FAT32"}, {"BLOCK_SIZE", "512"}}));
}

TEST_CASE("FAT32 label in the second cluster of the root directory") {
  auto found = probe(load_fixture("vfat-fat32-chain"));
  REQUIRE(found);
  // blkid: LABEL_FATBOOT=BOOT\ LABEL LABEL=CHAINED UUID=3200-0001 VERSION=FAT32 BLOCK_SIZE=512
  CHECK(found->tags == expected({{"LABEL_FATBOOT", "BOOT LABEL"},
                                 {"LABEL", "CHAINED"},
                                 {"UUID", "3200-0001"},
                                 {"VERSION", "FAT32"},
                                 {"BLOCK_SIZE", "512"}}));
}

// -------------------------------------------------------------- reads

TEST_CASE("a labelled volume costs the boot area and one root directory read") {
  for (const char* name : {"vfat-fat16-latin1", "vfat-fat32", "vfat-fat32-nolabel", "vfat-fat16-nolabel"}) {
    INFO(name);
    MemorySource source(load_fixture(name));
    REQUIRE(probe_vfat(source, {}));
    CHECK(source.reads() == 2);
    // The head, then the root directory up to the next 4 KiB boundary: the
    // label (or the end mark) is the first entry.
    CHECK(source.bytes_read() <= 4096 + 4096);
  }
}

TEST_CASE("FAT16: the root directory is read only up to the 4 KiB block holding the label") {
  // vfat-fat16-latin1: root directory of 512 entries (16 KiB) at byte 25088.
  MemorySource source(load_fixture("vfat-fat16-latin1"));
  REQUIRE(probe_vfat(source, {}));
  CHECK(source.bytes_read() == 4096 + (28672 - 25088));
}

// A FAT16 root directory (vfat-fat16-nolabel: 512 entries at byte 25088)
// whose first `skipped` entries are deleted ones, with a label after them.
Image deep_label(std::size_t skipped) {
  Image image = load_fixture("vfat-fat16-nolabel");
  constexpr std::size_t root = 25088;
  for (std::size_t i = 0; i < skipped; ++i) put_text(image, root + i * 32, std::string("\xE5OLD    TXT\x20", 12));
  put_text(image, root + skipped * 32, std::string("DEEP LABEL \x08", 12));
  return image;
}

TEST_CASE("FAT16: a label deep in the root directory is found piece by piece") {
  // Pieces: 25088..28672 (entries 0-111), 28672..32768 (112-239),
  // 32768..40960 (240-495), 40960..41472 (496-511).
  struct Case {
    std::size_t entry;
    int reads;
    std::uint64_t bytes;
  };
  for (Case c : {Case{0, 2, 4096 + 3584}, Case{111, 2, 4096 + 3584}, Case{112, 3, 4096 + 3584 + 4096},
                 Case{239, 3, 4096 + 3584 + 4096}, Case{240, 4, 4096 + 3584 + 4096 + 8192},
                 Case{300, 4, 4096 + 3584 + 4096 + 8192}, Case{511, 5, 4096 + 3584 + 4096 + 8192 + 512}}) {
    INFO("label at entry " << c.entry);
    MemorySource source(deep_label(c.entry));
    auto found = probe_vfat(source, {});
    REQUIRE(found);
    // blkid reads all 512 entries and finds the same first label.
    CHECK(tag(found->tags, "LABEL") == "DEEP LABEL");
    CHECK(source.reads() == c.reads);
    CHECK(source.bytes_read() == c.bytes);
  }
}

TEST_CASE("FAT16: the end-of-directory entry stops the reading") {
  Image image = deep_label(200);
  put_u8(image, 25088 + 150 * 32, 0);  // entry 150 ends the directory
  MemorySource source(image);
  auto found = probe_vfat(source, {});
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "<absent>");  // blkid: no LABEL (it stops there too)
  CHECK(source.reads() == 3);
  CHECK(source.bytes_read() == 4096 + 3584 + 4096);
}

TEST_CASE("a root directory that does not fit a non-tiny device is not read at all") {
  // As in "root directory running past the device end" below: blkid's one
  // read of the whole directory fails, so there is nothing to read for it.
  Image disk = load_fixture("vfat-fat16-latin1");
  put_le16(disk, 0x16, 3000);
  put_le16(disk, 0x11, 65520);
  put_le16(disk, 0x13, 0);
  put_le32(disk, 0x20, 1 + 6000 + 4095 + 5000);
  MemorySource source(disk);
  auto found = probe_vfat(source, {});
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "<absent>");  // blkid: no LABEL
  CHECK(source.reads() == 1);
}

TEST_CASE("through FileSource a FAT volume on a 1 GiB device costs 3 reads at most") {
  // All probers, as diskgatectl runs them: the head (8 KiB), the root
  // directory's first block (when outside the head) and btrfs' 64 KiB.
  struct Case {
    const char* name;
    const char* label;  // blkid's LABEL
  };
  for (Case c : {Case{"vfat-fat16-latin1", "CAF\xC9 \xE9T\xC9"}, Case{"vfat-fat16-nolabel", "<absent>"},
                 Case{"vfat-fat32", "FAT32 VOL"}, Case{"vfat-fat32-nolabel", "<absent>"},
                 Case{"vfat-fat12-4k", "4K SECTORS"}, Case{"vfat-fat12-floppy", "FLOPPY"}}) {
    INFO(c.name);
    testing::TempImage file(load_fixture(c.name), testing::kOneGiB);
    FileSource source(file.path());
    Report report = probe_source(source, {});
    REQUIRE(report.superblocks.size() == 1);
    CHECK(report.superblocks[0].type == "vfat");
    CHECK(tag(report.superblocks[0].tags, "LABEL") == c.label);
    CHECK(source.read_calls() <= 3);
    CHECK(source.bytes_read() <= 16384);
  }
}

// ------------------------------------------------------ BPB validity

TEST_CASE("sectors per cluster must be a non-zero power of two") {
  const Image base = load_fixture("vfat-fat16-nolabel");
  for (std::uint8_t value : {0, 3, 6, 255}) {
    INFO("sectors per cluster " << int{value});
    Image image = base;
    put_u8(image, 0x0D, value);
    DebugLog log;
    CHECK_FALSE(probe(image, &log));  // blkid: not vfat
    CHECK(log.mentions("sectors per cluster"));
  }
  Image image = base;
  put_u8(image, 0x0D, 128);
  auto found = probe(image);
  REQUIRE(found);
  CHECK(tag(found->tags, "VERSION") == "FAT12");  // blkid: 6063 / 128 clusters, FAT12
}

TEST_CASE("bytes per sector must be a power of two from 512 to 4096") {
  const Image base = load_fixture("vfat-fat16-nolabel");
  for (std::uint16_t value : {0, 256, 1000, 8192, 0xFFFF}) {
    INFO("bytes per sector " << value);
    Image image = base;
    put_le16(image, 0x0B, value);
    DebugLog log;
    CHECK_FALSE(probe(image, &log));  // blkid: not vfat
    CHECK(log.mentions("bytes per sector"));
  }
  for (std::uint16_t value : {1024, 4096}) {
    Image image = base;
    put_le16(image, 0x0B, value);
    auto found = probe(image);
    REQUIRE(found);
    CHECK(tag(found->tags, "BLOCK_SIZE") == std::to_string(value));  // blkid: BLOCK_SIZE=1024 / 4096
  }
}

TEST_CASE("no FATs, no reserved sectors or a bad media byte: not vfat") {
  const Image base = load_fixture("vfat-fat16-nolabel");
  Image image = base;
  put_u8(image, 0x10, 0);
  CHECK_FALSE(probe(image));
  image = base;
  put_le16(image, 0x0E, 0);
  CHECK_FALSE(probe(image));
  for (std::uint8_t media : {0x00, 0xF7}) {
    image = base;
    put_u8(image, 0x15, media);
    DebugLog log;
    CHECK_FALSE(probe(image, &log));
    CHECK(log.mentions("media"));
  }
  image = base;
  put_u8(image, 0x15, 0xF0);
  CHECK(probe(image));  // blkid: 0xF0 is a valid media byte
}

TEST_CASE("the cluster count decides FAT12/FAT16 and its upper limit") {
  Image image = load_fixture("vfat-fat16-nolabel");
  // 1 reserved + 2 FATs of 24 sectors + 32 root directory sectors.
  constexpr std::uint32_t overhead = 81;
  put_le16(image, 0x13, 0);  // total sectors from the 32-bit field
  // blkid: 0xFF3 FAT12; 0xFF4 and 0xFFF3 FAT16; 0xFFF4 vfat without VERSION; 0xFFF5 nothing.
  for (auto [clusters, version] : {std::pair<std::uint32_t, const char*>{0xFF3, "FAT12"},
                                   {0xFF4, "FAT16"},
                                   {0xFFF3, "FAT16"},
                                   {0xFFF4, "<absent>"}}) {
    INFO("clusters " << clusters);
    put_le32(image, 0x20, overhead + clusters);
    auto found = probe(image);
    REQUIRE(found);
    CHECK(tag(found->tags, "VERSION") == version);
    CHECK(tag(found->tags, "SEC_TYPE") == "msdos");
  }
  put_le32(image, 0x20, overhead + 0xFFF5);
  DebugLog log;
  CHECK_FALSE(probe(image, &log));
  CHECK(log.mentions("clusters"));
  // Fewer sectors than the metadata needs wraps to a huge count.
  put_le32(image, 0x20, overhead - 1);
  CHECK_FALSE(probe(image));
}

TEST_CASE("no FAT length at all: vfat with only BLOCK_SIZE") {
  Image image = load_fixture("vfat-fat16-nolabel");
  put_le16(image, 0x16, 0);
  put_le32(image, 0x24, 0);
  auto found = probe(image);
  REQUIRE(found);
  CHECK(found->tags == expected({{"BLOCK_SIZE", "512"}}));  // blkid: BLOCK_SIZE=512 TYPE=vfat
}

// ------------------------------------------------------------- magics

TEST_CASE("weak magics need 55 AA and no JFS/HPFS pseudo boot sector") {
  const Image base = load_fixture("vfat-fat16-nolabel");  // jump EB 3C 90, "FAT16   " at 0x36
  Image image = base;
  put_text(image, 0x36, "XXXXXXXX");
  CHECK(probe(image));  // blkid: vfat, from the EB jump
  put_le16(image, 0x1FE, 0);
  DebugLog log;
  CHECK_FALSE(probe(image, &log));  // blkid: nothing
  CHECK(log.mentions("55 AA"));

  image = base;
  put_le16(image, 0x1FE, 0);
  CHECK(probe(image));  // blkid: vfat; a strong magic needs no 55 AA

  for (const char* pseudo : {"JFS     ", "HPFS    "}) {
    INFO(pseudo);
    image = base;
    put_text(image, 0x36, pseudo);
    log.lines.clear();
    CHECK_FALSE(probe(image, &log));  // blkid: not vfat
    CHECK(log.mentions("JFS/HPFS"));
  }

  image = base;
  put_u8(image, 0, 0xE9);
  put_text(image, 0x36, "XXXXXXXX");
  CHECK(probe(image));  // blkid: vfat, from the E9 jump
  put_u8(image, 0, 0x00);
  CHECK(probe(image));  // blkid: vfat, from 55 AA alone
}

TEST_CASE("exFAT, NTFS and BitLocker boot sectors are not vfat") {
  const Image base = load_fixture("vfat-fat16-nolabel");
  Image image = base;
  put_text(image, 11, std::string(53, '\0'));  // exFAT zeroes bytes 11..63
  CHECK_FALSE(probe(image));
  image = base;
  put_text(image, 3, "NTFS    ");
  put_le16(image, 0x0E, 0);
  put_u8(image, 0x10, 0);
  CHECK_FALSE(probe(image));
  image = base;
  put_text(image, 0, "\xEB\x52\x90-FVE-FS-");  // blkid: TYPE=BitLocker instead
  DebugLog log;
  CHECK_FALSE(probe(image, &log));
  CHECK(log.mentions("BitLocker"));
}

TEST_CASE("devices of 1 KiB or less are not probed") {
  const Image base = load_fixture("vfat-fat32");
  for (std::size_t length : {0, 511, 512, 1023, 1024}) {
    INFO("length " << length);
    CHECK_FALSE(probe(truncated(base, length)));  // blkid: nothing
  }
  // blkid: LABEL_FATBOOT=FAT32\ VOL UUID=DEAD-BEEF VERSION=FAT32 BLOCK_SIZE=512 (root cluster gone)
  auto found = probe(truncated(base, 1025));
  REQUIRE(found);
  CHECK(found->tags == expected({{"LABEL_FATBOOT", "FAT32 VOL"},
                                 {"UUID", "DEAD-BEEF"},
                                 {"VERSION", "FAT32"},
                                 {"BLOCK_SIZE", "512"}}));
}

// -------------------------------------------------- serial and labels

TEST_CASE("FAT12/16 serial and boot label depend on the extended boot signature") {
  const Image base = load_fixture("vfat-fat16-latin1");
  Image image = base;
  put_u8(image, 0x26, 0x28);  // blkid: serial but no LABEL_FATBOOT
  auto found = probe(image);
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL_FATBOOT") == "<absent>");
  CHECK(tag(found->tags, "LABEL") == "CAF\xC9 \xE9T\xC9");
  CHECK(tag(found->tags, "UUID") == "16E9-E916");
  put_u8(image, 0x26, 0x00);  // blkid: neither
  found = probe(image);
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL_FATBOOT") == "<absent>");
  CHECK(tag(found->tags, "UUID") == "<absent>");
  CHECK(tag(found->tags, "LABEL") == "CAF\xC9 \xE9T\xC9");

  image = base;
  put_text(image, 0x27, std::string(4, '\0'));  // blkid: no UUID for a zero serial
  found = probe(image);
  REQUIRE(found);
  CHECK(tag(found->tags, "UUID") == "<absent>");
  CHECK(tag(found->tags, "LABEL_FATBOOT") == "CAF\xC9 \xE9T\xC9");
}

TEST_CASE("FAT32 boot label needs signature 0x29, the serial does not") {
  Image image = load_fixture("vfat-fat32");
  put_u8(image, 0x42, 0);
  auto found = probe(image);
  REQUIRE(found);
  // blkid: LABEL=FAT32\ VOL UUID=DEAD-BEEF VERSION=FAT32 BLOCK_SIZE=512
  CHECK(found->tags == expected({{"LABEL", "FAT32 VOL"},
                                 {"UUID", "DEAD-BEEF"},
                                 {"VERSION", "FAT32"},
                                 {"BLOCK_SIZE", "512"}}));
}

// ------------------------------------------------------ root directory

TEST_CASE("a root directory running past the device end: tiny devices read what is there") {
  // FAT12 floppy of 1440 KiB: blkid reads entry by entry and finds the label.
  Image floppy = load_fixture("vfat-fat12-floppy");
  put_le16(floppy, 0x11, 65520);           // 2 MiB of root directory
  put_le16(floppy, 0x13, 1 + 18 + 4095 + 100);  // keeps 100 clusters
  put_text(floppy, 19 * 512, std::string("PARTIAL    \x08", 12));
  auto found = probe(floppy);
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "PARTIAL");  // blkid: LABEL=PARTIAL

  // 3 MiB FAT16: blkid reads the root directory whole, which fails.
  Image disk = load_fixture("vfat-fat16-latin1");
  put_le16(disk, 0x16, 3000);  // root directory moved to sector 6001
  put_le16(disk, 0x11, 65520);
  put_le16(disk, 0x13, 0);
  put_le32(disk, 0x20, 1 + 6000 + 4095 + 5000);
  put_text(disk, 6001 * 512, std::string("PARTIAL    \x08", 12));
  found = probe(disk);
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "<absent>");  // blkid: no LABEL
  CHECK(tag(found->tags, "LABEL_FATBOOT") == "CAF\xC9 \xE9T\xC9");
}

TEST_CASE("tiny devices: entries are read up to the device end") {
  const Image base = load_fixture("vfat-fat12-floppy");
  const std::size_t root = 19 * 512;
  auto found = probe(truncated(base, root + 32));
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "FLOPPY");  // blkid: LABEL=FLOPPY
  found = probe(truncated(base, root + 31));
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "<absent>");  // blkid: no LABEL
  CHECK(tag(found->tags, "LABEL_FATBOOT") == "FLOPPY");
}

// ------------------------------------------------------------- FSInfo

TEST_CASE("FSInfo with a wrong signature is not vfat") {
  const Image base = load_fixture("vfat-fat32");  // FSInfo in sector 1
  Image image = base;
  put_u8(image, 512, 'X');
  DebugLog log;
  CHECK_FALSE(probe(image, &log));  // blkid: nothing
  CHECK(log.mentions("FSInfo"));
  image = base;
  put_u8(image, 512 + 484, 'X');
  log.lines.clear();
  CHECK_FALSE(probe(image, &log));  // blkid: nothing
  CHECK(log.mentions("FSInfo"));
}

TEST_CASE("FSInfo signatures may be RRdA or zeros, and FSInfo sector 0 is not checked") {
  const Image base = load_fixture("vfat-fat32");
  Image image = base;
  put_text(image, 512, "RRdA");
  CHECK(probe(image));  // blkid: vfat
  image = base;
  put_text(image, 512, std::string(4, '\0'));
  put_text(image, 512 + 484, std::string(4, '\0'));
  CHECK(probe(image));  // blkid: vfat
  image = base;
  put_u8(image, 512, 'X');
  put_le16(image, 0x30, 0);
  CHECK(probe(image));  // blkid: vfat
}

TEST_CASE("FSInfo sector beyond the device end is not vfat") {
  Image image = load_fixture("vfat-fat32");
  put_le16(image, 0x30, 0xFFFF);
  DebugLog log;
  CHECK_FALSE(probe(image, &log));  // blkid: nothing
  CHECK(log.mentions("FSInfo"));
}

// ----------------------------------------------------- FAT32 cluster chain

TEST_CASE("a root directory chain that loops forever terminates") {
  const Image base = load_fixture("vfat-fat32-chain");
  const Fat32 fat(base);
  // Cluster 2 (all LFN entries, no end) points to itself.
  Image image = base;
  fat.link(image, 2, 2);
  MemorySource source(image);
  auto found = probe_vfat(source, {});
  REQUIRE(found);
  // blkid (after its 99 rounds): LABEL_FATBOOT=BOOT\ LABEL UUID=3200-0001 VERSION=FAT32, no LABEL
  CHECK(found->tags == expected({{"LABEL_FATBOOT", "BOOT LABEL"},
                                 {"UUID", "3200-0001"},
                                 {"VERSION", "FAT32"},
                                 {"BLOCK_SIZE", "512"}}));
  CHECK(source.reads() <= 4);

  // 2 -> 40 -> 2, with cluster 40 a copy of cluster 2.
  image = base;
  fat.link(image, 40, 2);
  std::copy_n(image.begin() + static_cast<std::ptrdiff_t>(fat.cluster(2)), 512,
              image.begin() + static_cast<std::ptrdiff_t>(fat.cluster(40)));
  found = probe(image);
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "<absent>");  // blkid: no LABEL
}

TEST_CASE("a long chain of distinct clusters stops after 99 clusters") {
  Image image = load_fixture("vfat-fat32-chain");
  const Fat32 fat(image);
  // 2 -> 100 -> 101 -> ... -> 197 -> 40: clusters 100.. are copies of
  // cluster 2 (no label, no end), so the label in cluster 40 is the 100th.
  fat.link(image, 2, 100);
  for (std::uint32_t n = 100; n < 197; ++n) {
    fat.link(image, n, n + 1);
    std::copy_n(image.begin() + static_cast<std::ptrdiff_t>(fat.cluster(2)), 512,
                image.begin() + static_cast<std::ptrdiff_t>(fat.cluster(n)));
  }
  std::copy_n(image.begin() + static_cast<std::ptrdiff_t>(fat.cluster(2)), 512,
              image.begin() + static_cast<std::ptrdiff_t>(fat.cluster(197)));
  fat.link(image, 197, 40);
  MemorySource source(image);
  auto found = probe_vfat(source, {});
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "<absent>");  // blkid: no LABEL
  CHECK(source.reads() <= 1 + 2 * 99);
  // One cluster fewer and the label is the 99th.
  fat.link(image, 196, 40);
  found = probe(image);
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "CHAINED");  // blkid: LABEL=CHAINED
}

TEST_CASE("chain ends: end-of-chain mark, cluster 0 and clusters beyond the FAT") {
  const Image base = load_fixture("vfat-fat32-chain");
  const Fat32 fat(base);
  Image image = base;
  fat.link(image, 2, 0x0FFFFFFF);
  auto found = probe(image);
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "<absent>");  // blkid: no LABEL
  image = base;
  fat.link(image, 2, 0xF0000028);  // high nibble ignored: cluster 40
  found = probe(image);
  REQUIRE(found);
  CHECK(tag(found->tags, "LABEL") == "CHAINED");  // blkid: LABEL=CHAINED
  for (std::uint32_t root : {0u, 0x0FFFFFF0u}) {
    image = base;
    put_le32(image, 0x2C, root);
    found = probe(image);
    REQUIRE(found);
    CHECK(tag(found->tags, "LABEL") == "<absent>");  // blkid: no LABEL
  }
}

TEST_CASE("the walk stops at the end-of-directory entry (unlike blkid)") {
  Image image = load_fixture("vfat-fat32-chain");
  const Fat32 fat(image);
  put_u8(image, fat.cluster(2), 0);
  MemorySource source(image);
  auto found = probe_vfat(source, {});
  REQUIRE(found);
  // blkid 2.38.1 reads on past the end mark and prints LABEL=CHAINED here;
  // entries after it are free by definition, and stopping spares a FAT read
  // on every unlabelled FAT32 volume.
  CHECK(tag(found->tags, "LABEL") == "<absent>");
  CHECK(source.reads() == 2);
}

// ------------------------------------------------------------- garbage

TEST_CASE("random bytes never match and never throw") {
  for (std::uint32_t seed : {1u, 2u, 3u, 42u, 2024u, 0xC0FFEEu}) {
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    Image image(2 * 1024 * 1024);
    for (std::byte& b : image) b = static_cast<std::byte>(rng());
    std::optional<Superblock> found;
    REQUIRE_NOTHROW(found = probe(image));
    CHECK_FALSE(found);
  }
}

TEST_CASE("random BPBs behind a FAT magic never throw") {
  const Image base = load_fixture("vfat-fat32-chain");
  for (std::uint32_t seed = 0; seed < 300; ++seed) {
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    Image image = base;
    for (std::size_t i = 11; i < 0x5A; ++i) put_u8(image, i, static_cast<std::uint8_t>(rng()));
    // Keep some runs plausible so the directory walk gets exercised too.
    if (seed % 2) {
      put_le16(image, 0x0B, 512);
      put_u8(image, 0x0D, 1);
      put_u8(image, 0x10, 2);
      put_u8(image, 0x15, 0xF8);
    }
    REQUIRE_NOTHROW(probe(image));
  }
}

}  // namespace
}  // namespace diskgate::probe
