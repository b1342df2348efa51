// libFuzzer target for gate::parse_mount_options. Invariants: it never
// throws; errors carry a message; accepted options set only the flags of
// its word table; the data part parses again to no flags and the same data
// (data items are never flag words) and never starts or ends with a comma
// (re-parsing it also shows it holds no empty item). Keep crashing inputs under
// tests/fuzz/regressions/mount-options-fuzz/.
#include <sys/mount.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "require.h"
#include "gate/mount_options.h"

namespace {
using diskgate::fuzz::require;
constexpr unsigned long known_flags = MS_RDONLY | MS_NOATIME | MS_RELATIME | MS_STRICTATIME | MS_NODIRATIME |
                                      MS_NODEV | MS_NOSUID | MS_NOEXEC | MS_SYNCHRONOUS | MS_DIRSYNC |
                                      MS_LAZYTIME | MS_NOSYMFOLLOW | MS_I_VERSION;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diskgate::gate;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_mount_options(text);
  if (auto* error = std::get_if<MountOptionsError>(&parsed)) {
    require(!error->message.empty());
    return 0;
  }
  const MountOptions& options = std::get<MountOptions>(parsed);
  require((options.flags & ~known_flags) == 0);
  // At most one atime mode.
  unsigned long atime = options.flags & (MS_NOATIME | MS_RELATIME | MS_STRICTATIME);
  require((atime & (atime - 1)) == 0);
  require(options.data.size() <= text.size());
  // (",," may appear inside a quoted value: context="a,,b" is one item.)
  require(!options.data.starts_with(',') && !options.data.ends_with(','));
  auto again = parse_mount_options(options.data);
  require(std::holds_alternative<MountOptions>(again));
  require(std::get<MountOptions>(again).flags == 0 && std::get<MountOptions>(again).data == options.data);
  require(join_data({options.data, "", options.data}) ==
          (options.data.empty() ? std::string() : options.data + "," + options.data));
  return 0;
}
