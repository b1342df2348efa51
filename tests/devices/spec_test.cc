#include "devices/spec.h"

#include <catch2/catch.hpp>

#include <string>
#include <variant>

namespace diskgate::devices {
namespace {

Spec parsed(std::string_view text) {
  auto result = parse_spec(text);
  INFO("spec: " << std::string(text));
  if (auto* error = std::get_if<SpecError>(&result)) FAIL("unexpected error: " << error->message);
  return std::get<Spec>(result);
}

std::string error_of(std::string_view text) {
  auto result = parse_spec(text);
  INFO("spec: " << std::string(text));
  REQUIRE(std::holds_alternative<SpecError>(result));
  return std::get<SpecError>(result).message;
}

TEST_CASE("every KEY=value form parses to its kind and value") {
  CHECK(parsed("UUID=0a1b2c3d-0000-4000-8000-00000000abcd") ==
        Spec{SpecKind::uuid, "0a1b2c3d-0000-4000-8000-00000000abcd"});
  CHECK(parsed("UUID_SUB=11111111-2222-3333-4444-555555555555") ==
        Spec{SpecKind::uuid_sub, "11111111-2222-3333-4444-555555555555"});
  CHECK(parsed("LABEL=backup") == Spec{SpecKind::label, "backup"});
  CHECK(parsed("PARTUUID=1234abcd-01") == Spec{SpecKind::partuuid, "1234abcd-01"});
  CHECK(parsed("PARTLABEL=restic") == Spec{SpecKind::partlabel, "restic"});
}

TEST_CASE("a value may contain '=' after the first one") {
  CHECK(parsed("LABEL=a=b") == Spec{SpecKind::label, "a=b"});
}

TEST_CASE("blkid's quoted forms are unquoted") {
  CHECK(parsed("UUID=\"ABCD-1234\"") == Spec{SpecKind::uuid, "ABCD-1234"});
  CHECK(parsed("LABEL='my disk'") == Spec{SpecKind::label, "my disk"});
  CHECK(parsed("PARTLABEL=\"EFI system\"") == Spec{SpecKind::partlabel, "EFI system"});
  // Quotes of the other kind are plain characters inside.
  CHECK(parsed("LABEL=\"Bob's\"") == Spec{SpecKind::label, "Bob's"});
  CHECK(parsed("LABEL='say \"hi\"'") == Spec{SpecKind::label, "say \"hi\""});
  // blkid takes the value up to the last quote of the opening kind.
  CHECK(parsed("LABEL=\"a\"b\"") == Spec{SpecKind::label, "a\"b"});
}

TEST_CASE("bare UUIDs of the three blkid shapes are accepted as they are typed") {
  CHECK(parsed("0a1b2c3d-0000-4000-8000-00000000ABCD") ==
        Spec{SpecKind::bare_uuid, "0a1b2c3d-0000-4000-8000-00000000ABCD"});
  CHECK(parsed("ABCD-1234") == Spec{SpecKind::bare_uuid, "ABCD-1234"});
  CHECK(parsed("abcd-1234") == Spec{SpecKind::bare_uuid, "abcd-1234"});
  CHECK(parsed("1234abcd-01") == Spec{SpecKind::bare_uuid, "1234abcd-01"});
}

TEST_CASE("bare values of other shapes are refused") {
  for (std::string_view text : {"backup", "ABCD1234", "ABCD-12345", "ABC-1234", "XBCD-1234", "1234abcd-1",
                                "1234abcd-001", "0a1b2c3d-0000-4000-8000-00000000abc",
                                "0a1b2c3d-0000-4000-8000_00000000abcd", "0a1b2c3d00004000800000000000abcd"}) {
    INFO(std::string(text));
    CHECK_THAT(error_of(text), Catch::Contains("expected KEY=value"));
  }
}

TEST_CASE("device paths are cleaned up lexically") {
  CHECK(parsed("/dev/sda1") == Spec{SpecKind::path, "/dev/sda1"});
  CHECK(parsed("//dev//sda1/") == Spec{SpecKind::path, "/dev/sda1"});
  CHECK(parsed("/dev/./mapper/./x") == Spec{SpecKind::path, "/dev/mapper/x"});
  CHECK(parsed("/dev/disk/by-label/a=b") == Spec{SpecKind::path, "/dev/disk/by-label/a=b"});
}

TEST_CASE("paths outside /dev, without a device, or with .. are refused") {
  CHECK_THAT(error_of("/etc/passwd"), Catch::Contains("under /dev/"));
  CHECK_THAT(error_of("/dev"), Catch::Contains("names no device"));
  CHECK_THAT(error_of("/dev/"), Catch::Contains("names no device"));
  CHECK_THAT(error_of("/dev/../etc/shadow"), Catch::Contains("\"..\""));
  CHECK_THAT(error_of("/devices/sda"), Catch::Contains("under /dev/"));
}

TEST_CASE("empty specs and empty values are refused") {
  CHECK_THAT(error_of(""), Catch::Contains("empty spec"));
  CHECK_THAT(error_of("UUID="), Catch::Contains("empty UUID value"));
  CHECK_THAT(error_of("LABEL=\"\""), Catch::Contains("empty LABEL value"));
  CHECK_THAT(error_of("PARTLABEL=''"), Catch::Contains("empty PARTLABEL value"));
  CHECK_THAT(error_of("=abc"), Catch::Contains("missing key"));
}

TEST_CASE("unknown keys are refused, with a hint for lower case ones") {
  CHECK_THAT(error_of("TYPE=ext4"), Catch::Contains("unknown key \"TYPE\""));
  CHECK_THAT(error_of("PTUUID=abc"), Catch::Contains("unknown key \"PTUUID\""));
  CHECK_THAT(error_of("uuid=ABCD-1234"), Catch::Contains("keys are upper case: UUID"));
  CHECK_THAT(error_of("PartLabel=x"), Catch::Contains("keys are upper case: PARTLABEL"));
}

TEST_CASE("unbalanced quotes are refused") {
  CHECK_THAT(error_of("LABEL=\"abc"), Catch::Contains("unbalanced double quote"));
  CHECK_THAT(error_of("LABEL='abc"), Catch::Contains("unbalanced single quote"));
  CHECK_THAT(error_of("LABEL=\"abc'"), Catch::Contains("unbalanced double quote"));
  CHECK_THAT(error_of("LABEL=\""), Catch::Contains("unbalanced double quote"));
  CHECK_THAT(error_of("LABEL=abc\""), Catch::Contains("unbalanced quote"));
  CHECK_THAT(error_of("LABEL=Bob's"), Catch::Contains("unbalanced quote"));
}

TEST_CASE("NUL bytes and line breaks are refused and escaped in the message") {
  using namespace std::string_literals;
  std::string nul = error_of("LABEL=a\0b"s);
  CHECK_THAT(nul, Catch::Contains("NUL"));
  CHECK_THAT(nul, Catch::Contains("LABEL=a\\x00b"));
  CHECK(nul.find('\0') == std::string::npos);

  std::string newline = error_of("LABEL=a\nb");
  CHECK_THAT(newline, Catch::Contains("line break"));
  CHECK_THAT(newline, Catch::Contains("LABEL=a\\nb"));
  CHECK(newline.find('\n') == std::string::npos);

  CHECK_THAT(error_of("/dev/sda\r"), Catch::Contains("line break"));
  CHECK_THAT(error_of("ABCD-1234\n"), Catch::Contains("line break"));
}

TEST_CASE("messages name the spec and the problem") {
  CHECK(error_of("FOO=bar") ==
        "invalid device spec \"FOO=bar\": unknown key \"FOO\" (expected UUID, UUID_SUB, LABEL, PARTUUID or "
        "PARTLABEL)");
  CHECK(error_of("UUID=") == "invalid device spec \"UUID=\": empty UUID value");
  // A typed backslash is doubled, so it cannot pass for an escaped newline.
  CHECK_THAT(error_of("FOO=a\\nb"), Catch::Contains("\"FOO=a\\\\nb\""));
}

TEST_CASE("to_string gives a spec that parses back to the same") {
  for (const Spec& spec : {
           Spec{SpecKind::uuid, "ABCD-1234"},
           Spec{SpecKind::uuid_sub, "11111111-2222-3333-4444-555555555555"},
           Spec{SpecKind::label, "plain"},
           Spec{SpecKind::label, "with space"},
           Spec{SpecKind::label, "Bob's"},
           Spec{SpecKind::label, "\"quoted\""},
           Spec{SpecKind::label, "x\""},
           Spec{SpecKind::partuuid, "1234abcd-01"},
           Spec{SpecKind::partlabel, "a=b"},
           Spec{SpecKind::bare_uuid, "ABCD-1234"},
           Spec{SpecKind::path, "/dev/sda1"},
       }) {
    std::string text = to_string(spec);
    INFO(text);
    CHECK(parsed(text) == spec);
  }
  CHECK(to_string(Spec{SpecKind::label, "with space"}) == "LABEL=\"with space\"");
  CHECK(to_string(Spec{SpecKind::uuid, "ABCD-1234"}) == "UUID=ABCD-1234");
}

TEST_CASE("UUID-like kinds fold case, labels do not") {
  CHECK(folds_case(SpecKind::uuid));
  CHECK(folds_case(SpecKind::uuid_sub));
  CHECK(folds_case(SpecKind::partuuid));
  CHECK(folds_case(SpecKind::bare_uuid));
  CHECK_FALSE(folds_case(SpecKind::label));
  CHECK_FALSE(folds_case(SpecKind::partlabel));
  CHECK_FALSE(folds_case(SpecKind::path));
  CHECK(fold_uuid("ABCD-12ef") == "abcd-12ef");
}

}  // namespace
}  // namespace diskgate::devices
