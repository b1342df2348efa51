// One block device as the device map knows it: what sysfs/udev say about it
// and what probing found. Filled by src/udev (kernel facts) and the probe
// worker (identity); consumed by the pure device map.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "probe/probe.h"

namespace diskgate::devices {

// Facts from sysfs/udev; no I/O on the device itself.
struct KernelDevice {
  std::string name;        // kernel name: "sda1", "loop0"
  std::string node;        // "/dev/sda1"
  std::string syspath;     // "/sys/devices/.../block/sda/sda1"
  unsigned major = 0, minor = 0;
  std::uint64_t size_bytes = 0;  // 0: no medium / detached loop device
  std::string parent;      // kernel name of the parent disk; "" for a whole disk
  bool removable = false;
  bool operator==(const KernelDevice&) const = default;
};

// The outcome of probing a device's bytes.
struct Identity {
  enum class State { unprobed, identified, unidentified, unreadable };
  State state = State::unprobed;
  probe::Tags tags;         // plain-blkid tags (UUID, LABEL, TYPE, PARTUUID, ...)
  // What assembling a btrfs needs beyond the tags, when the device's one
  // superblock is a btrfs member. (Not the whole probe::Report: the map
  // keeps only what it uses, a device's memory is a goal.)
  std::optional<probe::BtrfsMember> btrfs;
  std::string error;        // why unreadable: "no medium", "Input/output error", ...
};

struct Device {
  KernelDevice kernel;
  Identity identity;
};

}  // namespace diskgate::devices
