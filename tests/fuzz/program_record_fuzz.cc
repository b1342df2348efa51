// libFuzzer target for gate::parse_program_record. Invariants: it never
// throws; an accepted record ended in a newline and names a pid in
// 2..4194304; format_program_record of the result parses to the same value,
// and that canonical text formats to itself.
// Keep crashing inputs under tests/fuzz/regressions/program-record-fuzz/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "require.h"
#include "gate/supervisor.h"

using diskgate::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diskgate;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = gate::parse_program_record(text);
  if (!parsed) return 0;
  require(text.ends_with('\n'));
  require(parsed->pid >= 2 && parsed->pid <= 4'194'304);
  std::string record = gate::format_program_record(*parsed);
  auto again = gate::parse_program_record(record);
  require(again && *again == *parsed);
  require(gate::format_program_record(*again) == record);
  return 0;
}
