// Probes a device or image by path: its own superblocks and tables, and for a
// partition device its entry in the parent disk's table (found via sysfs).
#pragma once

#include <string>

#include "probe/probe.h"

namespace diskgate::probe {

// Throws IoError (naming the path) when the device cannot be opened or read.
Report probe_path(const std::string& path, const Debug& debug, const std::string& sysfs_root = "/sys");

}  // namespace diskgate::probe
