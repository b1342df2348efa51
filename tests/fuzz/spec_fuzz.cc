// libFuzzer target for devices::parse_spec. Invariants: it never throws;
// an error names the problem (non-empty message, no raw line break in it);
// an accepted spec has a non-empty value free of NUL and line breaks, a path
// is clean (starts with /dev/, no "//", no "/./", no "/.." and no trailing
// '/'), a bare UUID is the input itself; and to_string(spec) parses back to
// the same spec. Keep crashing inputs under tests/fuzz/regressions/spec-fuzz/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "require.h"
#include "devices/spec.h"

using diskgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diskgate::devices;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_spec(text);
  if (auto* error = std::get_if<SpecError>(&parsed)) {
    require(!error->message.empty());
    require(error->message.find_first_of(std::string_view("\n\r\0", 3)) == std::string::npos);
    return 0;
  }
  const Spec& spec = std::get<Spec>(parsed);
  require(!spec.value.empty());
  require(spec.value.find_first_of(std::string_view("\n\r\0", 3)) == std::string::npos);
  if (spec.kind == SpecKind::path) {
    require(spec.value.starts_with("/dev/") && spec.value.size() > 5);
    require(spec.value.find("//") == std::string::npos && spec.value.find("/./") == std::string::npos);
    require(spec.value.find("/../") == std::string::npos && !spec.value.ends_with("/..") &&
            !spec.value.ends_with("/.") && !spec.value.ends_with("/"));
  }
  if (spec.kind == SpecKind::bare_uuid) require(spec.value == text);
  std::string again_text = to_string(spec);
  auto again = parse_spec(again_text);
  require(std::holds_alternative<Spec>(again) && std::get<Spec>(again) == spec);
  require(fold_uuid(spec.value).size() == spec.value.size());
  return 0;
}
