// Devices and probe results for the tests that feed a DeviceMap by hand
// (the map's own tests and the gate's), so each says only what it varies.
#pragma once

#include <cstdint>
#include <string>

#include "devices/device.h"

namespace diskgate::devices::testing {

constexpr std::uint64_t GiB = 1ull << 30;

KernelDevice kdev(const std::string& name, unsigned major, unsigned minor, std::uint64_t size = GiB,
                  const std::string& parent = "");
// An identified single-device filesystem, tags in plain blkid's order; an
// empty uuid or label is left out.
Identity filesystem(const std::string& type, const std::string& uuid, const std::string& label = "");
// An identified btrfs member.
Identity btrfs(const std::string& fsid, const std::string& sub, std::uint64_t devid, std::uint64_t num_devices,
               std::uint64_t generation = 10, const std::string& label = "pool");
Identity unidentified();
// Adds the partition-entry tags blkid prints after the filesystem's (a GPT
// entry when it has a name, else an MBR one).
Identity in_partition(Identity id, const std::string& partuuid, const std::string& partlabel = "");

}  // namespace diskgate::devices::testing
