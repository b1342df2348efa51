#include "probe/format.h"

#include <catch2/catch.hpp>

#include "probe/test_support.h"

using namespace diskgate::probe;

namespace {
Report ext4_on_gpt_partition() {
  Report report;
  report.superblocks.push_back(
      {"ext4", "filesystem", {{"LABEL", "my lab"}, {"UUID", "7ecb45bc-adb2-47ae-9cbe-0b0aa11fee84"},
                              {"VERSION", "1.0"}, {"BLOCK_SIZE", "1024"}}, std::nullopt});
  PartitionEntry entry;
  entry.number = 2;
  entry.start = 2048;
  entry.size = 4096;
  entry.type = "0fc63daf-8483-4772-8e79-3d69d8477de4";
  entry.uuid = "5d2c7c2d-5c39-4a5e-9d2b-2a3f9c1b0e11";
  entry.name = "data";
  report.entry = entry;
  report.entry_scheme = "gpt";
  report.entry_disk = "7:0";
  return report;
}

std::string names(const Tags& tags) {
  std::string out;
  for (const Tag& t : tags) out += t.name + " ";
  return out;
}
}  // namespace

TEST_CASE("plain blkid drops VERSION and USAGE and renames the entry's name and uuid") {
  Tags tags = report_tags(ext4_on_gpt_partition(), false);
  CHECK(names(tags) == "LABEL UUID BLOCK_SIZE TYPE PARTLABEL PARTUUID ");
}

TEST_CASE("blkid -p keeps VERSION, USAGE and every PART_ENTRY tag in blkid's order") {
  Tags tags = report_tags(ext4_on_gpt_partition(), true);
  CHECK(names(tags) ==
        "LABEL UUID VERSION BLOCK_SIZE TYPE USAGE PART_ENTRY_SCHEME PART_ENTRY_NAME PART_ENTRY_UUID "
        "PART_ENTRY_TYPE PART_ENTRY_NUMBER PART_ENTRY_OFFSET PART_ENTRY_SIZE PART_ENTRY_DISK ");
  CHECK(testing::tag(tags, "PART_ENTRY_OFFSET") == "2048");
  CHECK(testing::tag(tags, "PART_ENTRY_DISK") == "7:0");
}

TEST_CASE("partition flags print in hex only when set") {
  Report report = ext4_on_gpt_partition();
  report.entry->flags = 0x80;
  CHECK(testing::tag(report_tags(report, true), "PART_ENTRY_FLAGS") == "0x80");
  report.entry->flags = 0;
  CHECK(testing::tag(report_tags(report, true), "PART_ENTRY_FLAGS") == "<absent>");
}

TEST_CASE("a whole disk shows PTUUID before PTTYPE, and no PTUUID when the table has none") {
  Report report;
  report.table = PartitionTable{"dos", "a1b2c3d4", {}};
  CHECK(names(report_tags(report, true)) == "PTUUID PTTYPE ");
  report.table->id.clear();
  CHECK(names(report_tags(report, false)) == "PTTYPE ");
}

TEST_CASE("an ambivalent report has no tags to print") {
  Report report = ext4_on_gpt_partition();
  report.superblocks.push_back({"vfat", "filesystem", {}, std::nullopt});
  CHECK(report.ambivalent());
  CHECK(report_tags(report, true).empty());
}

// Expected strings below are what blkid 2.38.1 printed for the same values.
TEST_CASE("safe_print uses M- and ^ notation and backslash escapes") {
  CHECK(safe_print("my lab", " \\\"'$`<>") == "my\\ lab");
  CHECK(safe_print("a\"b\\c", "\"\\") == "a\\\"b\\\\c");
  CHECK(safe_print("\xc3\xa9", "") == "M-CM-)");
  CHECK(safe_print(std::string("x\x01y\x7f", 4), "") == "x^Ay^?");
  // 0x9C is M- then ^ and 0x1C ^ 0x40 = '\\', which blkid does not escape.
  CHECK(safe_print("\x9c", "\"\\") == "M-^\\");
  CHECK(safe_print("\xdc", "\"\\") == "M-\\\\");
}

TEST_CASE("encode_string hex-escapes all but a whitelist and valid UTF-8") {
  CHECK(encode_string("my lab") == "my\\x20lab");
  CHECK(encode_string("a\\b/c") == "a\\x5cb\\x2fc");
  CHECK(encode_string("\xc3\xa9t\xc3\xa9") == "\xc3\xa9t\xc3\xa9");
  CHECK(encode_string("\xe9") == "\\xe9");            // Latin-1, not UTF-8
  CHECK(encode_string("\xc0\x80") == "\\xc0\\x80");  // overlong
}

TEST_CASE("safe_string squeezes white space into one underscore and replaces invalid UTF-8") {
  CHECK(safe_string("my lab") == "my_lab");
  CHECK(safe_string("  a \t b  ") == "a_b");
  CHECK(safe_string("A$`'&!(#)%~") == "A$`'&!(#)%~");  // blkid keeps ASCII punctuation
  CHECK(safe_string("a\x01\x7f") == "a\x01\x7f");
  CHECK(safe_string("\xc3\xa9\xff") == "\xc3\xa9_");
  CHECK(safe_string(std::string(256, 'a')).empty());  // too long for blkid's buffer
}

TEST_CASE("encode_string stops where blkid's 265-byte buffer is full") {
  CHECK(encode_string(std::string(300, 'a')).size() == 262);
  CHECK(encode_string(std::string(100, ' ')).size() == 264);
}

TEST_CASE("full format prints one line per device, with -p a bare newline when -s hides everything") {
  Tags tags = report_tags(ext4_on_gpt_partition(), true);
  CHECK(format_device("d", tags, {"UUID"}, OutputFormat::full, true, true) ==
        "d: UUID=\"7ecb45bc-adb2-47ae-9cbe-0b0aa11fee84\"\n");
  CHECK(format_device("d", tags, {"NOPE"}, OutputFormat::full, true, true) == "\n");
  CHECK(format_device("d", tags, {"NOPE"}, OutputFormat::full, false, true).empty());
}

TEST_CASE("export and udev put a blank line before every device but the first") {
  Tags tags{{"TYPE", "ext4"}};
  CHECK(format_device("d", tags, {}, OutputFormat::export_, true, true) == "DEVNAME=d\nTYPE=ext4\n");
  CHECK(format_device("d", tags, {}, OutputFormat::export_, true, false) == "\nDEVNAME=d\nTYPE=ext4\n");
  CHECK(format_device("d", tags, {}, OutputFormat::udev, false, false) == "\nID_FS_TYPE=ext4\n");
  CHECK(format_device("d", tags, {}, OutputFormat::value, false, false) == "ext4\n");
}

TEST_CASE("udev format gives LABEL-like tags a safe and an encoded form") {
  Tags tags{{"LABEL_FATBOOT", "NO NAME"}, {"PTTYPE", "gpt"}, {"PART_ENTRY_NAME", "a b"}, {"PART_ENTRY_NUMBER", "1"}};
  CHECK(format_device("d", tags, {}, OutputFormat::udev, true, true) ==
        "ID_FS_LABEL_FATBOOT=NO_NAME\nID_FS_LABEL_FATBOOT_ENC=NO\\x20NAME\nID_PART_TABLE_TYPE=gpt\n"
        "ID_PART_ENTRY_NAME=a\\x20b\nID_PART_ENTRY_NUMBER=1\n");
}
