// btrfs prober: real images from fixtures/unit-exfat-btrfs.sh and
// hand-made corruptions of them. Expected tag values are what
// `blkid -p -o export` (util-linux 2.38.1) printed for each fixture; the
// member fields are what `btrfs inspect-internal dump-super` printed.
#include <catch2/catch.hpp>

#include <random>

#include "probe/checksums.h"
#include "probe/test_support.h"

namespace diskgate::probe {
namespace {

using namespace testing;

constexpr std::size_t kSb = 65536;

std::optional<Superblock> probe(const Image& image, DebugLog* log = nullptr) {
  return probe_superblock(image, probe_btrfs, log);
}

// Recomputes the superblock checksum after a test changed a field, so that
// the field itself is what the prober sees wrong.
void resign(Image& image) {
  Bytes covered(image.data() + kSb + 32, 4096 - 32);
  std::array<std::byte, 32> csum{};
  std::uint16_t type = std::to_integer<std::uint16_t>(image.at(kSb + 196)) |
                       std::to_integer<std::uint16_t>(image.at(kSb + 197)) << 8;
  switch (type) {
    case 0: {
      std::uint32_t crc = ~crc32c_update(~0u, covered);
      for (int i = 0; i < 4; ++i) csum[i] = std::byte(static_cast<std::uint8_t>(crc >> (8 * i)));
      break;
    }
    case 1: {
      std::uint64_t h = xxhash64(covered);
      for (int i = 0; i < 8; ++i) csum[i] = std::byte(static_cast<std::uint8_t>(h >> (8 * i)));
      break;
    }
    case 2: csum = sha256(covered); break;
    case 3: csum = blake2b_256(covered); break;
    default: FAIL("resign: unknown csum type " << type);
  }
  std::copy(csum.begin(), csum.end(), image.begin() + kSb);
}

// Reports a size but serves only the first `served` bytes, like a device
// whose reads come back short.
class ShortSource : public Source {
 public:
  ShortSource(Image image, std::uint64_t size, std::size_t served)
      : image_(std::move(image)), size_(size), served_(served) {}
  std::uint64_t size() const override { return size_; }
  Bytes read(std::uint64_t offset, std::size_t length) override {
    if (offset >= served_) return {};
    return Bytes(image_).subspan(offset, std::min<std::size_t>(length, served_ - offset));
  }

 private:
  Image image_;
  std::uint64_t size_;
  std::size_t served_;
};

struct CsumFixture {
  const char* name;
  const char* uuid;
  const char* uuid_sub;
};
// blkid's UUID / UUID_SUB for the four single-device images (no label,
// BLOCK_SIZE=4096).
const CsumFixture kCsumFixtures[] = {
    {"btrfs-crc32c", "0b5e1c2a-0000-4000-8000-000000000001", "d0000000-0000-4000-8000-000000000001"},
    {"btrfs-xxhash", "0b5e1c2a-0000-4000-8000-000000000002", "d0000000-0000-4000-8000-000000000002"},
    {"btrfs-sha256", "0b5e1c2a-0000-4000-8000-000000000003", "d0000000-0000-4000-8000-000000000003"},
    {"btrfs-blake2", "0b5e1c2a-0000-4000-8000-000000000004", "d0000000-0000-4000-8000-000000000004"},
};

}  // namespace

TEST_CASE("btrfs: each checksum type is recognised with blkid's tags") {
  for (const CsumFixture& f : kCsumFixtures) {
    INFO(f.name);
    auto sb = probe(load_fixture(f.name));
    REQUIRE(sb);
    CHECK(sb->type == "btrfs");
    CHECK(sb->usage == "filesystem");
    // blkid -p -o export: UUID, UUID_SUB, BLOCK_SIZE (no LABEL).
    Tags want{{"UUID", f.uuid}, {"UUID_SUB", f.uuid_sub}, {"BLOCK_SIZE", "4096"}};
    CHECK(sb->tags == want);
  }
}

TEST_CASE("btrfs: fills the member record of a single-device filesystem") {
  auto sb = probe(load_fixture("btrfs-crc32c"));
  REQUIRE(sb);
  REQUIRE(sb->btrfs);
  BtrfsMember want;
  want.fsid = "0b5e1c2a-0000-4000-8000-000000000001";
  want.dev_uuid = "d0000000-0000-4000-8000-000000000001";
  want.devid = 1;
  want.num_devices = 1;
  want.generation = 6;
  want.total_bytes = 119537664;  // the 114 MiB mkfs was given
  want.label = "";
  CHECK(*sb->btrfs == want);
}

TEST_CASE("btrfs: label comes first, in blkid's order") {
  auto sb = probe(load_fixture("btrfs-label"));
  REQUIRE(sb);
  // blkid -p -o export: LABEL=backup\ pool, UUID, UUID_SUB, BLOCK_SIZE.
  Tags want{{"LABEL", "backup pool"},
            {"UUID", "0b5e1c2a-0000-4000-8000-000000000005"},
            {"UUID_SUB", "d0000000-0000-4000-8000-000000000005"},
            {"BLOCK_SIZE", "4096"}};
  CHECK(sb->tags == want);
  REQUIRE(sb->btrfs);
  CHECK(sb->btrfs->label == "backup pool");
}

TEST_CASE("btrfs: the two members of a raid1 filesystem tell themselves apart") {
  auto a = probe(load_fixture("btrfs-raid1-a"));
  auto b = probe(load_fixture("btrfs-raid1-b"));
  REQUIRE(a);
  REQUIRE(b);
  // blkid: same UUID, UUID_SUB ...aa and ...bb.
  CHECK(tag(a->tags, "UUID") == "0b5e1c2a-0000-4000-8000-0000000000aa");
  CHECK(tag(b->tags, "UUID") == "0b5e1c2a-0000-4000-8000-0000000000aa");
  CHECK(tag(a->tags, "UUID_SUB") == "d0000000-0000-4000-8000-0000000000aa");
  CHECK(tag(b->tags, "UUID_SUB") == "d0000000-0000-4000-8000-0000000000bb");
  REQUIRE(a->btrfs);
  REQUIRE(b->btrfs);
  CHECK(a->btrfs->fsid == b->btrfs->fsid);
  CHECK(a->btrfs->dev_uuid == "d0000000-0000-4000-8000-0000000000aa");
  CHECK(b->btrfs->dev_uuid == "d0000000-0000-4000-8000-0000000000bb");
  CHECK(a->btrfs->devid == 1);
  CHECK(b->btrfs->devid == 2);
  CHECK(a->btrfs->num_devices == 2);
  CHECK(b->btrfs->num_devices == 2);
  CHECK(a->btrfs->total_bytes == 262144000);  // 2 x 125 MiB
  CHECK(b->btrfs->total_bytes == 262144000);
  CHECK(a->btrfs->generation == 6);
  CHECK(b->btrfs->generation == 6);
}

TEST_CASE("btrfs: one flipped byte fails every checksum type") {
  for (const CsumFixture& f : kCsumFixtures) {
    // The stored checksum, the first and last covered bytes, and the label.
    for (std::size_t at : {std::size_t{0}, std::size_t{32}, std::size_t{299}, std::size_t{4095}}) {
      INFO(f.name << " byte " << at);
      Image image = load_fixture(f.name);
      image.at(kSb + at) ^= std::byte{0x01};
      DebugLog log;
      CHECK_FALSE(probe(image, &log));
      CHECK(log.mentions("checksum"));
    }
  }
}

TEST_CASE("btrfs: a checksum byte beyond the type's size is not compared") {
  // crc32c uses 4 of the 32 csum bytes; btrfs-progs ignores the rest too.
  Image image = load_fixture("btrfs-crc32c");
  image.at(kSb + 4) ^= std::byte{0xFF};
  CHECK(probe(std::move(image)));
}

TEST_CASE("btrfs: unknown checksum types are rejected") {
  for (std::uint16_t type : {std::uint16_t{4}, std::uint16_t{0xFFFF}}) {
    INFO(type);
    Image image = load_fixture("btrfs-crc32c");
    put_le16(image, kSb + 196, type);
    DebugLog log;
    CHECK_FALSE(probe(image, &log));
    CHECK(log.mentions("checksum type"));
  }
}

TEST_CASE("btrfs: sectorsize 0 is rejected even with a good checksum") {
  Image image = load_fixture("btrfs-crc32c");
  put_le32(image, kSb + 144, 0);
  resign(image);
  DebugLog log;
  CHECK_FALSE(probe(image, &log));
  CHECK(log.mentions("sectorsize"));
}

TEST_CASE("btrfs: BLOCK_SIZE is the sectorsize") {
  Image image = load_fixture("btrfs-sha256");
  put_le32(image, kSb + 144, 65536);
  resign(image);
  auto sb = probe(std::move(image));
  REQUIRE(sb);
  CHECK(tag(sb->tags, "BLOCK_SIZE") == "65536");
}

TEST_CASE("btrfs: label white space is trimmed, a blank label gives no tag") {
  // blkid trims trailing white space (checked with mkfs.btrfs -L 'pool   ').
  Image image = load_fixture("btrfs-crc32c");
  put_text(image, kSb + 299, "pool   ");
  resign(image);
  auto sb = probe(image);
  REQUIRE(sb);
  CHECK(sb->tags.front() == Tag{"LABEL", "pool"});
  CHECK(sb->btrfs->label == "pool");

  put_text(image, kSb + 299, "       ");  // over all of "pool   "
  resign(image);
  sb = probe(image);
  REQUIRE(sb);
  CHECK(tag(sb->tags, "LABEL") == "<absent>");
}

TEST_CASE("btrfs: all-zero UUIDs give no UUID tags") {
  // blkid on a copy with fsid and dev_item.uuid zeroed printed LABEL-less
  // BLOCK_SIZE=4096 only.
  Image image = load_fixture("btrfs-xxhash");
  for (std::size_t i = 0; i < 16; ++i) {
    put_u8(image, kSb + 32 + i, 0);
    put_u8(image, kSb + 267 + i, 0);
  }
  resign(image);
  auto sb = probe(std::move(image));
  REQUIRE(sb);
  CHECK(sb->tags == Tags{{"BLOCK_SIZE", "4096"}});
}

TEST_CASE("btrfs: devices below 1 MiB are skipped, 1 MiB is enough") {
  Image image = load_fixture("btrfs-crc32c");
  REQUIRE(image.size() == 1024 * 1024);  // the fixture is cut to exactly 1 MiB
  CHECK(probe(image));
  image.pop_back();
  DebugLog log;
  CHECK_FALSE(probe(image, &log));
  CHECK(log.lines.empty());  // blkid does not even look
}

TEST_CASE("btrfs: truncated images are not btrfs") {
  for (std::size_t cut : {kSb + 100, kSb + 0x40 + 4, kSb + 4095, kSb}) {
    INFO(cut);
    Image image = load_fixture("btrfs-crc32c");
    image.resize(cut);
    CHECK_FALSE(probe(std::move(image)));
  }
}

TEST_CASE("btrfs: a device that ends inside the superblock is rejected") {
  // The size says 1 MiB but reads end early (65536 + 100).
  for (std::size_t served : {kSb + 100, kSb + 4095}) {
    INFO(served);
    ShortSource source(load_fixture("btrfs-crc32c"), 1024 * 1024, served);
    DebugLog log;
    CHECK_FALSE(probe_btrfs(source, log.sink()));
    CHECK(log.mentions("ends inside"));
  }
}

TEST_CASE("btrfs: one read of the superblock") {
  MemorySource source(load_fixture("btrfs-blake2"));
  REQUIRE(probe_btrfs(source, {}));
  CHECK(source.reads() == 1);
}

TEST_CASE("btrfs: works without a debug sink") {
  Image image = load_fixture("btrfs-crc32c");
  image.at(kSb + 500) ^= std::byte{0x01};
  MemorySource source(std::move(image));
  CHECK_FALSE(probe_btrfs(source, {}));
}

TEST_CASE("btrfs: random bytes never match and never crash") {
  std::mt19937_64 rng(20240601);
  auto fill = [&](Image& image, std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) image[i] = std::byte(static_cast<std::uint8_t>(rng()));
  };
  // Random superblocks with the magic in place (and random csum types).
  Image image(1024 * 1024);
  for (int round = 0; round < 500; ++round) {
    fill(image, kSb, kSb + 4096);
    put_text(image, kSb + 0x40, "_BHRfS_M");
    if (round % 2) put_le16(image, kSb + 196, static_cast<std::uint16_t>((round / 2) % 4));
    CHECK_FALSE(probe(image));
  }
  // Whole random devices of assorted sizes.
  for (std::size_t size : {std::size_t{0}, std::size_t{512}, kSb + 64, std::size_t{1024 * 1024},
                           std::size_t{1024 * 1024 + 4097}}) {
    Image noise(size);
    fill(noise, 0, size);
    CHECK_FALSE(probe(std::move(noise)));
  }
}

}  // namespace diskgate::probe
