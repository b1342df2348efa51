// Finds a partition's place on its parent disk through sysfs. The sysfs root
// is passed in so that tests can lay out a fake tree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "probe/probe.h"

namespace diskgate::probe {

// For block device major:minor, the parent disk and the partition's start and
// size when it is a partition; nullopt for whole disks and unknown devices.
// The first line of a small file (a sysfs attribute), without its newline;
// nullopt when it cannot be read (the device went away).
std::optional<std::string> read_first_line(const std::string& path);
// A sysfs attribute holding one unsigned decimal; nullopt when unreadable or
// not a number.
std::optional<std::uint64_t> read_sysfs_number(const std::string& path);

std::optional<PartitionLocation> partition_location(unsigned major, unsigned minor,
                                                    const std::string& sysfs_root = "/sys",
                                                    const std::string& dev_root = "/dev");

}  // namespace diskgate::probe
