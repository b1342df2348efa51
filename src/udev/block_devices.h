// Which block devices exist and when they come, go or change: an
// enumeration of /sys/class/block, plus a netlink uevent monitor through one
// of two backends that give the same KernelDevice values:
// - libudev (block_devices_libudev.cc, built with -Dudev=enabled): the only
//   place that talks to libudev; the header keeps <libudev.h> out of every
//   includer;
// - sysfs (block_devices_sysfs.cc, always built): our own
//   NETLINK_KOBJECT_UEVENT socket on the kernel's group, for static builds
//   without libudev (gokrazy). Kernel uevents only.
// The enumeration reads sysfs whatever the backend: libudev's enumerator
// gives the same values (tests/udev/block_devices_test.cc compares) at
// about six times the cost, walking each device's path twice and reading
// udev's database, which nothing here uses. The daemon takes
// default_backend() and never learns which it has.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "devices/device.h"

namespace diskgate::udev {
namespace detail {
class Source;
}

// Something the OS refused; the message names what failed and why.
class UdevError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where uevents come from: udevd's rebroadcast after its rules ran, or the
// kernel directly (no udevd, e.g. gokrazy; udevd's group then stays silent).
enum class UeventSource { udev, kernel };
// The configured choice; `automatic` follows whether udevd is running.
enum class SourceMode { automatic, udev, kernel };

enum class Backend { libudev, sysfs };
std::string_view to_string(Backend backend);
// Whether this build has libudev (meson -Dudev=enabled).
bool have_libudev();
// libudev when built with it (unchanged behaviour), sysfs otherwise.
Backend default_backend();

// "auto" | "udev" | "kernel"; nullopt for anything else.
std::optional<SourceMode> parse_source_mode(std::string_view text);
std::string_view to_string(UeventSource source);

// Pure: an explicit mode wins; `automatic` takes udev when udevd runs,
// kernel otherwise.
UeventSource choose_source(SourceMode mode, bool udevd_running);
// A string literal would pick the bool overload above (pointer to bool is a
// standard conversion, to std::string a user-defined one): refused.
UeventSource choose_source(SourceMode mode, const char* udevd_control) = delete;
// The same, asking whether udevd accepts a connection on `udevd_control`
// (normally /run/udev/control; the socket file outlives udevd). Built
// without libudev, `automatic` is always kernel (udevd is not asked);
// an explicit udev stays udev, for the caller to refuse.
UeventSource choose_source(SourceMode mode, const std::string& udevd_control);

enum class Action { add, change, remove, other };

struct Uevent {
  Action action = Action::other;
  std::string action_name;  // ACTION as sent: "add", "move", "offline", ...
  // On remove, sysfs is gone: only name, node, syspath, major:minor and
  // parent (from DEVPATH) are filled; size_bytes is 0, removable false.
  devices::KernelDevice device;
  // DISK_MEDIA_CHANGE=1: the medium changed (card reader, optical). Whether
  // a plain change event changed the size is for the caller to compare.
  bool media_change = false;
};

struct Received {
  std::vector<Uevent> events;  // in arrival order
  // The socket buffer overflowed (ENOBUFS): events were lost and the caller
  // must re-enumerate and diff.
  bool overflowed = false;
};

// The same as BlockDevices::enumerate(), which shares nothing with the
// monitor: safe on another thread while the loop uses its BlockDevices.
// Throws UdevError.
std::vector<devices::KernelDevice> enumerate_block_devices();

class BlockDevices {
 public:
  // Creates a monitor for `source`, filtered to subsystem "block", and
  // enables receiving at once, so that nothing happening between
  // construction and enumerate() is missed.
  // receive_buffer_bytes > 0 sets the socket's receive buffer (needs
  // CAP_NET_ADMIN beyond the system limit); 0 keeps the default.
  // UdevError for the libudev backend in a build without libudev, and for
  // the udev source on the sysfs backend (it reads the kernel's format only).
  explicit BlockDevices(UeventSource source, int receive_buffer_bytes = 0, Backend backend = default_backend());
  ~BlockDevices();
  BlockDevices(BlockDevices&&) noexcept;
  BlockDevices& operator=(BlockDevices&&) noexcept;
  BlockDevices(const BlockDevices&) = delete;
  BlockDevices& operator=(const BlockDevices&) = delete;

  // Readable when uevents are pending; poll it, then call receive().
  int fd() const;

  // Every block device now present: disks and partitions, loop devices
  // included (detached ones have size 0). Devices vanishing mid-scan are
  // left out.
  std::vector<devices::KernelDevice> enumerate() const;

  // Drains pending uevents without blocking: all of them, up to a few
  // thousand per call so that a flood cannot hold the caller's loop (the fd
  // then stays readable). Messages for other subsystems, from senders
  // other than the chosen source, and malformed ones are dropped. Throws
  // UdevError only when the socket itself is broken.
  Received receive();

  Backend backend() const { return backend_; }

 private:
  Backend backend_;
  std::unique_ptr<detail::Source> impl_;
};

}  // namespace diskgate::udev
