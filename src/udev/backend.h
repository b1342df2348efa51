// Inside src/udev only: the two implementations behind BlockDevices and
// enumerate_block_devices(). block_devices.cc picks one; neither includer of
// block_devices.h sees which.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "udev/block_devices.h"

namespace diskgate::udev::detail {

// One monitor socket.
class Source {
 public:
  virtual ~Source() = default;
  virtual int fd() const = 0;
  virtual Received receive() = 0;
};

// block_devices_libudev.cc, built only with libudev (-Dudev=enabled).
std::unique_ptr<Source> open_libudev(UeventSource source, int receive_buffer_bytes);

// block_devices_sysfs.cc, always built: a NETLINK_KOBJECT_UEVENT socket on
// the kernel's group, and the enumeration of /sys/class/block (both
// backends'). `sysfs_root` is "/sys" but for tests on a fake tree;
// syspaths are under it.
std::unique_ptr<Source> open_kernel_netlink(int receive_buffer_bytes);
std::vector<devices::KernelDevice> enumerate_sysfs(const std::string& sysfs_root = "/sys");

// Shared by both (block_devices.cc).
// The last path component, with the kernel's '!' for '/' undone as udev
// does for sysname ("cciss!c0d0" -> "cciss/c0d0").
std::string kernel_name(std::string_view path);
std::string_view dirname(std::string_view path);
Action parse_action(std::string_view action);
// name, node, syspath, major:minor and parent are set; reads size and
// removable from sysfs (a partition's removable is its disk's): 0 and
// false for a device gone meanwhile.
void read_sysfs_attributes(devices::KernelDevice& device);
// The same, from the device's directory `dir_fd` (an O_PATH descriptor).
void read_sysfs_attributes_at(int dir_fd, devices::KernelDevice& device);
// A whole sysfs attribute of the directory `dir_fd`; nullopt when unreadable.
std::optional<std::string> read_attribute_at(int dir_fd, const char* name);
std::string errno_text(int err);

}  // namespace diskgate::udev::detail
