// The kernel uevent parser on real-shaped and hostile messages. Pure: no
// root, no kernel. Inputs the fuzzer (tests/fuzz/kernel_uevent_fuzz.cc)
// found to break an invariant are kept at the end as regression cases.
#include "udev/kernel_uevent.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace diskgate::udev {
namespace {

using namespace std::string_literals;

// A message from fields joined with NUL, as the kernel sends it.
std::string message(const std::vector<std::string>& fields) {
  std::string out;
  for (const auto& field : fields) out += field + '\0';
  return out;
}

// A loop partition's add, as `udevadm monitor --kernel --property` shows it.
std::vector<std::string> partition_add() {
  return {"add@/devices/virtual/block/loop3/loop3p1",
          "ACTION=add",
          "DEVPATH=/devices/virtual/block/loop3/loop3p1",
          "SUBSYSTEM=block",
          "MAJOR=259",
          "MINOR=0",
          "DEVNAME=loop3p1",
          "DEVTYPE=partition",
          "DISKSEQ=12",
          "PARTN=1",
          "SEQNUM=4711"};
}

// Refused, for the reason containing `because`.
void refused(const std::string& bytes, const std::string& because) {
  std::string why;
  auto parsed = parse_kernel_uevent(bytes, &why);
  INFO("reason given: " << why);
  CHECK_FALSE(parsed);
  CHECK(why.find(because) != std::string::npos);
}

std::vector<std::string> with(std::vector<std::string> fields, const std::string& key, const std::string& value) {
  for (auto& f : fields)
    if (f.starts_with(key + "=")) f = key + "=" + value;
  return fields;
}

std::vector<std::string> without(std::vector<std::string> fields, const std::string& key) {
  std::erase_if(fields, [&](const std::string& f) { return f.starts_with(key + "="); });
  return fields;
}

}  // namespace

TEST_CASE("a kernel partition add is read field by field", "[kernel_uevent]") {
  auto parsed = parse_kernel_uevent(message(partition_add()));
  REQUIRE(parsed);
  CHECK(parsed->action == "add");
  CHECK(parsed->devpath == "/devices/virtual/block/loop3/loop3p1");
  CHECK(parsed->subsystem == "block");
  CHECK(parsed->devtype == "partition");
  CHECK(parsed->devname == "loop3p1");
  CHECK(parsed->has_devnum);
  CHECK(parsed->major == 259);
  CHECK(parsed->minor == 0);
  CHECK(parsed->seqnum == 4711);
  CHECK_FALSE(parsed->disk_media_change);
}

TEST_CASE("span and string_view give the same result; format round-trips", "[kernel_uevent]") {
  std::string bytes = message(partition_add());
  auto from_span = parse_kernel_uevent(std::span(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  REQUIRE(from_span);
  CHECK(from_span == parse_kernel_uevent(bytes));
  CHECK(parse_kernel_uevent(format_kernel_uevent(*from_span)) == from_span);
}

TEST_CASE("optional fields: no DEVTYPE, DEVNAME or MAJOR/MINOR; DISK_MEDIA_CHANGE", "[kernel_uevent]") {
  auto parsed = parse_kernel_uevent(message(
      {"change@/devices/virtual/mem/null", "ACTION=change", "DEVPATH=/devices/virtual/mem/null", "SUBSYSTEM=mem",
       "SEQNUM=1"}));
  REQUIRE(parsed);
  CHECK(parsed->devtype.empty());
  CHECK(parsed->devname.empty());
  CHECK_FALSE(parsed->has_devnum);

  auto media = partition_add();
  media.insert(media.end() - 1, "DISK_MEDIA_CHANGE=1");
  CHECK(parse_kernel_uevent(message(media))->disk_media_change);
  CHECK_FALSE(parse_kernel_uevent(message(with(media, "DISK_MEDIA_CHANGE", "0")))->disk_media_change);
  // A devname in a directory, as the kernel names some nodes.
  CHECK(parse_kernel_uevent(message(with(partition_add(), "DEVNAME", "cciss/c0d0p1")))->devname == "cciss/c0d0p1");
  // Keys we do not read may repeat (a synthetic uevent's SYNTH_ARG_A twice).
  auto synth = partition_add();
  synth.insert(synth.end() - 1, "SYNTH_ARG_A=1");
  synth.insert(synth.end() - 1, "SYNTH_ARG_A=2");
  CHECK(parse_kernel_uevent(message(synth)));
}

TEST_CASE("framing: empty, too long, no terminating NUL, empty fields", "[kernel_uevent]") {
  refused("", "empty");
  std::string good = message(partition_add());
  refused(good.substr(0, good.size() - 1), "NUL");
  refused(good + '\0', "empty field");
  std::string huge = good.substr(0, good.size() - 1) + std::string(max_message_bytes, 'x') + '\0';
  refused(huge, "longer than");
  // Header only, nothing else: ACTION= is missing.
  refused(message({"add@/devices/virtual/block/loop0"}), "no ACTION");
  // Truncated after every byte: never accepted unless the cut falls after a field.
  for (std::size_t n = 0; n < good.size(); ++n) {
    auto parsed = parse_kernel_uevent(std::string_view(good).substr(0, n));
    if (parsed) CHECK(good[n - 1] == '\0');
  }
}

TEST_CASE("udevd's own format is refused", "[kernel_uevent]") {
  std::string libudev = "libudev\0"s + std::string("\xfe\xed\xca\xfe\x28\x00\x00\x00", 8) + message(partition_add());
  refused(libudev, "libudev");
}

TEST_CASE("header: no '@', empty parts, disagreeing with ACTION or DEVPATH", "[kernel_uevent]") {
  auto fields = partition_add();
  fields[0] = "add/devices/virtual/block/loop3/loop3p1";
  refused(message(fields), "no '@'");
  fields[0] = "@/devices/virtual/block/loop3/loop3p1";
  refused(message(fields), "empty ACTION");
  fields[0] = "add@";
  refused(message(fields), "empty ACTION or DEVPATH");
  fields[0] = "remove@/devices/virtual/block/loop3/loop3p1";
  refused(message(fields), "ACTION differs");
  fields[0] = "add@/devices/virtual/block/loop3/loop3p2";
  refused(message(fields), "DEVPATH differs");
}

TEST_CASE("required fields: ACTION, DEVPATH, SUBSYSTEM, SEQNUM", "[kernel_uevent]") {
  refused(message(without(partition_add(), "ACTION")), "no ACTION");
  refused(message(with(partition_add(), "ACTION", "")), "no ACTION");
  refused(message(without(partition_add(), "DEVPATH")), "no DEVPATH");
  refused(message(without(partition_add(), "SUBSYSTEM")), "no SUBSYSTEM");
  refused(message(with(partition_add(), "SUBSYSTEM", "")), "no SUBSYSTEM");
  refused(message(without(partition_add(), "SEQNUM")), "no SEQNUM");
}

TEST_CASE("keys: empty, no '=', odd bytes, duplicates of the fields we read", "[kernel_uevent]") {
  auto fields = partition_add();
  fields.insert(fields.end() - 1, "=value");
  refused(message(fields), "bad key");
  fields = partition_add();
  fields.insert(fields.end() - 1, "NOEQUALS");
  refused(message(fields), "without '='");
  fields = partition_add();
  fields.insert(fields.end() - 1, "BAD KEY=1");
  refused(message(fields), "bad key");
  for (std::string key : {"ACTION=add", "DEVPATH=/devices/virtual/block/loop3/loop3p1", "SUBSYSTEM=block",
                          "MAJOR=7", "MINOR=1", "DEVNAME=loop0", "DEVTYPE=disk", "SEQNUM=4711",
                          "DISK_MEDIA_CHANGE=1"}) {
    fields = partition_add();
    fields.insert(fields.end() - 1, key);
    if (key.starts_with("DISK_MEDIA_CHANGE=")) fields.insert(fields.end() - 1, key);  // not in the base message
    INFO(key);
    // First wins or last wins would both be a guess: refused.
    refused(message(fields), "duplicate key");
  }
}

TEST_CASE("values: control bytes are refused", "[kernel_uevent]") {
  refused(message(with(partition_add(), "DEVTYPE", "part\x01ition")), "control byte");
  refused(message(with(partition_add(), "DEVNAME", "loop3p1\n")), "control byte");
  refused(message(with(partition_add(), "PARTN", "\x7f")), "control byte");
}

TEST_CASE("DEVPATH and DEVNAME must not leave their directory", "[kernel_uevent]") {
  for (std::string devpath : {"/devices/../../etc", "/devices/virtual/block/..", "devices/virtual/block/loop0",
                              "/devices//block/loop0", "/devices/./block/loop0", "/devices/block/loop0/", "/"}) {
    INFO(devpath);
    auto fields = with(partition_add(), "DEVPATH", devpath);
    fields[0] = "add@" + devpath;
    refused(message(fields), "unsafe DEVPATH");
  }
  for (std::string devname : {"../sda", "/dev/sda", "a/../../b", "", "x/", "x//y", "."}) {
    INFO(devname);
    refused(message(with(partition_add(), "DEVNAME", devname)), "unsafe DEVNAME");
  }
}

TEST_CASE("MAJOR, MINOR, SEQNUM: plain decimals in range", "[kernel_uevent]") {
  for (std::string bad : {"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "١"}) {
    INFO("'" << bad << "'");
    refused(message(with(partition_add(), "MAJOR", bad)), "not a decimal");
    refused(message(with(partition_add(), "MINOR", bad)), "not a decimal");
    refused(message(with(partition_add(), "SEQNUM", bad)), "SEQNUM");
  }
  refused(message(with(partition_add(), "MAJOR", "4096")), "out of range");
  refused(message(with(partition_add(), "MINOR", "1048576")), "out of range");
  refused(message(with(partition_add(), "MAJOR", "99999999999999999999")), "not a decimal");  // > 2^64
  refused(message(with(partition_add(), "MAJOR", "4294967303")), "out of range");  // 2^32 + 7: no wrap to 7
  refused(message(with(partition_add(), "MINOR", "000000000000000000000000001")), "not a decimal");
  refused(message(without(partition_add(), "MINOR")), "MAJOR without MINOR");
  refused(message(without(partition_add(), "MAJOR")), "MAJOR without MINOR");
  refused(message(with(partition_add(), "SEQNUM", "0")), "SEQNUM");
  refused(message(with(partition_add(), "SEQNUM", "18446744073709551616")), "SEQNUM");  // 2^64

  auto top = parse_kernel_uevent(message(with(with(with(partition_add(), "MAJOR", "4095"), "MINOR", "1048575"),
                                              "SEQNUM", "18446744073709551615")));
  REQUIRE(top);
  CHECK(top->major == max_major);
  CHECK(top->minor == max_minor);
  CHECK(top->seqnum == UINT64_MAX);
}

TEST_CASE("NUL inside what looks like one field splits it", "[kernel_uevent]") {
  // "DEVNAME=loop3p1\0../../etc" is DEVNAME=loop3p1 and a field without '='.
  std::string bytes = message(partition_add());
  bytes.insert(bytes.find("DEVNAME=loop3p1") + 15, "\0../../etc"s);
  refused(bytes, "without '='");
}

// Regression inputs from the fuzzer: none broke an invariant in its runs so
// far (see tests/fuzz/kernel_uevent_fuzz.cc); the shapes it favours are kept.
TEST_CASE("fuzzer-shaped inputs", "[kernel_uevent]") {
  refused("@\0"s, "empty ACTION");
  refused("a@/\0ACTION=a\0DEVPATH=/\0SUBSYSTEM=b\0SEQNUM=1\0"s, "unsafe DEVPATH");
  refused("\0"s, "no '@'");
  refused("libudev\0"s, "libudev");
  auto minimal = parse_kernel_uevent("a@/b\0ACTION=a\0DEVPATH=/b\0SUBSYSTEM=c\0SEQNUM=1\0"s);
  REQUIRE(minimal);
  CHECK(minimal->devpath == "/b");
}

}  // namespace diskgate::udev
