// Where the gate's source stands in the device map: absent, incomplete,
// ambiguous, or ready to mount (and with what). Pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "devices/device_map.h"

namespace diskgate::gate {

struct SourceState {
  enum class Kind {
    absent,      // nothing matches the spec (yet)
    unprobed,    // a match is still being probed
    incomplete,  // a multi-device filesystem with members missing
    ambiguous,   // several candidates, or members in conflict
    ready,       // every member is there
  };
  Kind kind = Kind::absent;
  std::string fs_uuid;
  std::string fstype;
  std::string label;
  std::string device;  // the node to mount (btrfs: the lowest devid present)
  std::vector<std::string> members;  // nodes that belong, by devid
  // btrfs: each member's UUID_SUB, as the map knows it (beside `members`).
  // The gate reads the superblocks again before mounting and compares.
  std::vector<std::string> member_uuid_subs;
  unsigned device_major = 0, device_minor = 0;  // of `device`
  std::string member_data;           // btrfs: "device=/dev/A,device=/dev/B"
  std::uint64_t present = 0, expected = 0;
  std::vector<std::uint64_t> missing_devids;
  std::string detail;  // why it is not ready, for LastError and the log
};

SourceState evaluate_source(const devices::DeviceMap& map, const devices::Spec& spec);

}  // namespace diskgate::gate
