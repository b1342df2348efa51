// libFuzzer target for parse_kernel_uevent: any bytes, as a netlink socket
// could hand them over. Invariants checked on every accepted message:
// - the fields obey the rules in kernel_uevent.h (non-empty ACTION and
//   SUBSYSTEM, DEVPATH absolute and without "..", DEVNAME relative and
//   without "..", MAJOR/MINOR within the dev_t split, SEQNUM > 0);
// - the input's header was ACTION@DEVPATH and it ended in NUL;
// - formatting the result and parsing that again gives the same result.
// A crash or abort() here is a bug; keep the input as a regression case in
// tests/udev/kernel_uevent_test.cc. Build and run: tests/fuzz/meson.build.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "require.h"
#include "udev/kernel_uevent.h"

namespace {

using diskgate::fuzz::require;

bool escapes(std::string_view path) {
  return path.find("/../") != std::string_view::npos || path.starts_with("../") || path.ends_with("/..") ||
         path == ".." || path.find("//") != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace diskgate::udev;
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  std::string why;
  auto parsed = parse_kernel_uevent(bytes, &why);
  if (!parsed) {
    require(!why.empty());
    return 0;
  }
  std::string_view input(reinterpret_cast<const char*>(data), size);
  require(size <= max_message_bytes && input.back() == '\0');
  require(!input.starts_with(std::string_view("libudev\0", 8)));
  require(input.substr(0, input.find('\0')) == parsed->action + "@" + parsed->devpath);
  require(!parsed->action.empty() && !parsed->subsystem.empty());
  require(parsed->devpath.starts_with('/') && !escapes(parsed->devpath) && safe_path(parsed->devpath, true));
  require(parsed->devname.empty() || (!parsed->devname.starts_with('/') && !escapes(parsed->devname)));
  require(parsed->major <= max_major && parsed->minor <= max_minor);
  require(parsed->has_devnum || (parsed->major == 0 && parsed->minor == 0));
  require(parsed->seqnum > 0);
  for (char c : parsed->devpath + parsed->devname + parsed->action + parsed->subsystem + parsed->devtype)
    require(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
  auto again = parse_kernel_uevent(format_kernel_uevent(*parsed));
  require(again && *again == *parsed);
  return 0;
}
