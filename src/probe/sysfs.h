// Finds a partition's place on its parent disk through sysfs. The sysfs root
// is passed in so that tests can lay out a fake tree.
#pragma once

#include <optional>
#include <string>

#include "probe/probe.h"

namespace diskgate::probe {

// For block device major:minor, the parent disk and the partition's start and
// size when it is a partition; nullopt for whole disks and unknown devices.
std::optional<PartitionLocation> partition_location(unsigned major, unsigned minor,
                                                    const std::string& sysfs_root = "/sys",
                                                    const std::string& dev_root = "/dev");

}  // namespace diskgate::probe
