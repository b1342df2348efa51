// The kernel's uevent messages as a NETLINK_KOBJECT_UEVENT socket bound to
// group 1 receives them: "ACTION@DEVPATH\0KEY=VALUE\0KEY=VALUE\0...". Pure:
// bytes in, a checked message (or why not) out. Every byte is hostile.
//
// Rules (a message breaking any of them is refused as a whole):
// - at most max_message_bytes, ending in NUL; no empty field;
// - udevd's own format ("libudev\0" + a binary header, group 2) is refused:
//   only the kernel's is read here;
// - the header is ACTION@DEVPATH; ACTION=, DEVPATH=, SUBSYSTEM= and SEQNUM=
//   are present (as libudev requires) and ACTION/DEVPATH agree with it;
// - keys are [A-Za-z0-9_]+; a key this parser reads (the fields below)
//   given twice refuses the message: neither the first nor the last copy is
//   more believable than the other, and the kernel never repeats one. Other
//   keys are checked for shape and otherwise ignored, repeats included
//   (a root `echo "change UUID A=1 A=2" > uevent` repeats SYNTH_ARG_A);
// - values hold no control bytes (< 0x20, 0x7f);
// - DEVPATH is absolute, with no empty, "." or ".." component (it becomes
//   a path under /sys that we open); DEVNAME is relative with the same rule;
// - MAJOR and MINOR come together, plain decimal (no sign, no spaces),
//   MAJOR < 2^12 and MINOR < 2^20 (the kernel's dev_t split); SEQNUM is a
//   decimal that fits 64 bits and is not 0 (libudev refuses 0 as well).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace diskgate::udev {

struct KernelUevent {
  std::string action;     // "add", "remove", "change", "move", "online", ...
  std::string devpath;    // "/devices/virtual/block/loop0" (under /sys)
  std::string subsystem;  // "block"
  std::string devtype;    // "disk", "partition", "" when absent
  std::string devname;    // "loop0", "cciss/c0d0"; "" when absent
  bool has_devnum = false;
  unsigned major = 0, minor = 0;
  std::uint64_t seqnum = 0;
  bool disk_media_change = false;  // DISK_MEDIA_CHANGE=1
  bool operator==(const KernelUevent&) const = default;
};

inline constexpr std::size_t max_message_bytes = 8192;  // the kernel sends at most 2048
inline constexpr unsigned max_major = (1u << 12) - 1;
inline constexpr unsigned max_minor = (1u << 20) - 1;

// nullopt for anything that breaks the rules above; `why` (when given) then
// says which rule.
std::optional<KernelUevent> parse_kernel_uevent(std::span<const std::byte> message, std::string* why = nullptr);
std::optional<KernelUevent> parse_kernel_uevent(std::string_view message, std::string* why = nullptr);

// The message as the kernel would send it (header, then ACTION, DEVPATH,
// SUBSYSTEM, the optional fields present, SEQNUM): for tests and the fuzzer's
// round trip.
std::string format_kernel_uevent(const KernelUevent& event);

// A DEVPATH/DEVNAME-style path: non-empty components, none "." or "..", no
// control bytes; `absolute` says whether it must start with '/' or must not.
bool safe_path(std::string_view path, bool absolute);

}  // namespace diskgate::udev
