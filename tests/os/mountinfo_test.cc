#include <catch2/catch.hpp>

#include "os/platform.h"

namespace diskgate::os {
namespace {

// Lines as /proc/self/mountinfo printed them (Linux 6.18): a btrfs subvolume
// mounted on "a b" and made shared, the same filesystem on "t<TAB>ab\bs".
constexpr const char* btrfs_lines =
    "43 27 0:39 /sv /tmp/osseams/a\\040b rw,relatime shared:1 - btrfs /dev/loop0 "
    "rw,compress=zstd:3,discard=async,space_cache=v2,subvolid=256,subvol=/sv\n"
    "44 27 0:39 / /tmp/osseams/t\\011ab\\134bs rw,relatime - btrfs /dev/loop0 "
    "rw,compress=zstd:3,discard=async,space_cache=v2,subvolid=5,subvol=/\n";

TEST_CASE("a plain line is split into its fields") {
  auto entries = parse_mountinfo("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resuid=65534\n");
  REQUIRE(entries.size() == 1);
  MountEntry expected;
  expected.major = 254;
  expected.minor = 0;
  expected.root = "/";
  expected.target = "/";
  expected.options = "rw,relatime";
  expected.fstype = "ext4";
  expected.source = "/dev/vda";
  expected.super_options = "rw,discard,resuid=65534";
  CHECK(entries[0] == expected);
}

TEST_CASE("btrfs lines: subvolume root, anonymous device, escaped mount points") {
  auto entries = parse_mountinfo(btrfs_lines);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].major == 0);
  CHECK(entries[0].minor == 39);
  CHECK(entries[0].root == "/sv");
  CHECK(entries[0].target == "/tmp/osseams/a b");
  CHECK(entries[0].options == "rw,relatime");
  CHECK(entries[0].fstype == "btrfs");
  CHECK(entries[0].source == "/dev/loop0");
  CHECK(entries[0].super_options == "rw,compress=zstd:3,discard=async,space_cache=v2,subvolid=256,subvol=/sv");
  CHECK(entries[1].root == "/");
  CHECK(entries[1].target == "/tmp/osseams/t\tab\\bs");
  CHECK(entries[1].super_options == "rw,compress=zstd:3,discard=async,space_cache=v2,subvolid=5,subvol=/");
}

TEST_CASE("all four escapes are decoded, in every field") {
  auto entries = parse_mountinfo("50 27 7:1 /r\\040t /m\\011n\\012o\\134p rw - ext4 /dev/my\\040disk rw,x\\040y\n");
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].root == "/r t");
  CHECK(entries[0].target == "/m\tn\no\\p");
  CHECK(entries[0].source == "/dev/my disk");
  CHECK(entries[0].super_options == "rw,x y");
}

TEST_CASE("a backslash that is not an octal escape stays") {
  auto entries = parse_mountinfo("50 27 7:1 / /a\\b\\04\\9999\\ rw - ext4 /dev/x rw\n");
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].target == "/a\\b\\04\\9999\\");
  // \777 is beyond a byte: kept as written.
  CHECK(parse_mountinfo("50 27 7:1 / /a\\777 rw - ext4 /dev/x rw\n").at(0).target == "/a\\777");
}

TEST_CASE("optional fields are skipped up to the separator") {
  auto entries = parse_mountinfo(
      "75 26 0:40 / /run/user/1000 rw,nosuid,nodev,relatime shared:42 master:2 - tmpfs tmpfs rw,size=1k,mode=700\n"
      "76 26 0:41 / /u rw unbindable - tmpfs tmpfs rw\n"
      "77 26 0:42 / /p rw propagate_from:3 master:4 shared:5 - tmpfs none rw\n");
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].target == "/run/user/1000");
  CHECK(entries[0].options == "rw,nosuid,nodev,relatime");
  CHECK(entries[0].fstype == "tmpfs");
  CHECK(entries[0].source == "tmpfs");
  CHECK(entries[0].super_options == "rw,size=1k,mode=700");
  CHECK(entries[1].target == "/u");
  CHECK(entries[2].source == "none");
  CHECK(entries[2].minor == 42);
}

TEST_CASE("an empty source keeps the fields after it in place") {
  auto entries = parse_mountinfo("80 27 0:50 / /f rw - fuse.x  rw,user_id=0\n");
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].fstype == "fuse.x");
  CHECK(entries[0].source == "");
  CHECK(entries[0].super_options == "rw,user_id=0");
}

TEST_CASE("entries keep the order of the table, last line without newline too") {
  auto entries = parse_mountinfo(
      "1 0 8:1 / /s rw - ext4 /dev/a rw\n"
      "2 1 8:2 / /s rw - ext4 /dev/b rw");
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].source == "/dev/a");
  CHECK(entries[1].source == "/dev/b");
}

TEST_CASE("malformed lines are skipped, good ones around them kept") {
  const std::string good = "27 1 254:0 / / rw - ext4 /dev/vda rw\n";
  const char* garbage[] = {
      "",
      "garbage",
      "27 1 254:0 / / rw ext4 /dev/vda rw",                // no separator
      "27 1 254:0 / / rw - ext4 /dev/vda",                 // super options missing
      "27 1 254:0 / / rw - ext4 /dev/vda rw extra",        // one field too many
      "27 1 254:0 / / rw - ",                              // nothing after the separator
      "x 1 254:0 / / rw - ext4 /dev/vda rw",               // mount id not a number
      "27 -1 254:0 / / rw - ext4 /dev/vda rw",             // negative parent
      "27 1 254 / / rw - ext4 /dev/vda rw",                // no minor
      "27 1 254:x / / rw - ext4 /dev/vda rw",              // minor not a number
      "27 1 :0 / / rw - ext4 /dev/vda rw",                 // no major
      "27 1 99999999999:0 / / rw - ext4 /dev/vda rw",      // major overflows
      "27 1 254:0  / rw - ext4 /dev/vda rw",               // empty root
      "27 1 254:0 / / rw  - ext4 /dev/vda rw",             // empty optional field
      "27 1 254:0 / / rw -  /dev/vda rw",                  // empty fstype
      "27  1 254:0 / / rw - ext4 /dev/vda rw",             // double space shifts fields
      "\x01\x02\xff\xfe - - - - - - - - -",
  };
  for (const char* line : garbage) {
    INFO(line);
    auto entries = parse_mountinfo(good + line + "\n" + good);
    CHECK(entries.size() == 2);
    CHECK(parse_mountinfo(line).empty());
  }
}

TEST_CASE("random bytes give no crash") {
  std::string text;
  unsigned state = 12345;
  for (int i = 0; i < 20000; ++i) {
    state = state * 1103515245 + 12345;
    const char alphabet[] = "0123456789 :-\\\n/abc";
    text.push_back(alphabet[(state >> 16) % (sizeof alphabet - 1)]);
  }
  auto entries = parse_mountinfo(text);
  for (const auto& entry : entries) CHECK_FALSE(entry.fstype.empty());
}

TEST_CASE("an empty table has no entries") {
  CHECK(parse_mountinfo("").empty());
  CHECK(parse_mountinfo("\n\n").empty());
}

TEST_CASE("/proc/filesystems: a type is listed by its own name only") {
  const std::string text = "nodev\tsysfs\nnodev\ttmpfs\n\text3\n\text4\n\tvfat\nnodev\tfuse\n\tfuseblk\n";
  CHECK(lists_filesystem(text, "ext4"));
  CHECK(lists_filesystem(text, "tmpfs"));
  CHECK(lists_filesystem(text, "fuseblk"));
  CHECK_FALSE(lists_filesystem(text, "btrfs"));
  CHECK_FALSE(lists_filesystem(text, "fuse "));
  CHECK_FALSE(lists_filesystem(text, "ext"));
  CHECK_FALSE(lists_filesystem(text, "nodev"));
  CHECK_FALSE(lists_filesystem(text, ""));
  CHECK_FALSE(lists_filesystem("", "ext4"));
  CHECK(lists_filesystem("\tbtrfs", "btrfs"));  // no final newline
  CHECK_FALSE(lists_filesystem("btrfs\n", "btrfs"));  // no tab: not the kernel's format
}

}  // namespace
}  // namespace diskgate::os
