// evaluate_source on device maps built from synthetic events: where the
// gate's source stands, and what would be mounted.
#include "gate/source_state.h"

#include <catch2/catch.hpp>

#include "gate/fakes.h"

namespace diskgate::gate {
namespace {

using namespace fakes;
using Kind = SourceState::Kind;
using Nodes = std::vector<std::string>;

const std::string ext_uuid = "0a1b2c3d-0000-4000-8000-00000000abcd";
const std::string fsid = "f5b1a2c3-1111-4222-8333-444455556666";
const std::string sub1 = "a0000000-0000-4000-8000-000000000001";
const std::string sub2 = "a0000000-0000-4000-8000-000000000002";
const std::string sub3 = "a0000000-0000-4000-8000-000000000003";

SourceState evaluate(const devices::DeviceMap& map, std::string_view text) {
  return evaluate_source(map, spec(text));
}

std::string kind_name(Kind kind) {
  switch (kind) {
    case Kind::absent: return "absent";
    case Kind::unprobed: return "unprobed";
    case Kind::incomplete: return "incomplete";
    case Kind::ambiguous: return "ambiguous";
    case Kind::ready: return "ready";
  }
  return "?";
}

// A two-device btrfs whose devid 1 is on sdc and devid 2 on sdb, so that the
// order by devid differs from the order by name.
void add_pool(devices::DeviceMap& map) {
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
  add(map, kdev("sdc", 8, 32), btrfs(fsid, sub1, 1, 2));
}

TEST_CASE("source: nothing in the map is absent, and says what it waits for") {
  devices::DeviceMap map;
  SourceState s = evaluate(map, "UUID=" + ext_uuid);
  CHECK(kind_name(s.kind) == "absent");
  CHECK(s.detail == "no device matches UUID=" + ext_uuid);
  CHECK(s.device.empty());
  CHECK(s.members.empty());
  CHECK(s.present == 0);
  CHECK(s.expected == 0);

  add(map, kdev("sda", 8, 0), filesystem("ext4", "11111111-0000-4000-8000-000000000000"));
  CHECK(kind_name(evaluate(map, "UUID=" + ext_uuid).kind) == "absent");
  CHECK(kind_name(evaluate(map, "/dev/sdz").kind) == "absent");
}

TEST_CASE("source: a single ext4 device is ready, however it is named") {
  devices::DeviceMap map;
  add(map, kdev("sda", 8, 0), filesystem("vfat", "1234-ABCD", "OTHER"));
  add(map, kdev("sdb1", 8, 17), in_partition(filesystem("ext4", ext_uuid, "backup"), "cafe0001-01"));
  for (std::string text : {"UUID=" + ext_uuid, ext_uuid, std::string("LABEL=backup"), std::string("/dev/sdb1"),
                           std::string("PARTUUID=cafe0001-01"), std::string("UUID=0A1B2C3D-0000-4000-8000-00000000ABCD")}) {
    INFO(text);
    SourceState s = evaluate(map, text);
    CHECK(kind_name(s.kind) == "ready");
    CHECK(s.fs_uuid == ext_uuid);
    CHECK(s.fstype == "ext4");
    CHECK(s.label == "backup");
    CHECK(s.device == "/dev/sdb1");
    CHECK(s.members == Nodes{"/dev/sdb1"});
    CHECK(s.member_data.empty());  // only btrfs lists its devices
    CHECK(s.present == 1);
    CHECK(s.expected == 1);
    CHECK(s.missing_devids.empty());
    CHECK(s.detail.empty());
  }
}

TEST_CASE("source: a device path naming a device still being probed is unprobed") {
  // source_state.h: "unprobed: a match is still being probed", and the gate
  // relies on it to hold its judgement on a mount it sees at the target.
  // DISAGREED (fixed in source_state.cc): DeviceMap::resolve matches a path
  // whatever the identity, so evaluate_source said the device "holds no
  // filesystem diskgate knows" instead of unprobed.
  devices::DeviceMap map;
  map.apply(devices::Upsert{kdev("sdb", 8, 16)});
  REQUIRE(map.pending_probe("sdb"));
  SourceState s = evaluate(map, "/dev/sdb");
  CHECK(kind_name(s.kind) == "unprobed");
  CHECK(s.detail == "/dev/sdb is being probed");
}

TEST_CASE("source: a device that holds no known filesystem is absent") {
  devices::DeviceMap map;
  add(map, kdev("sdb", 8, 16), unidentified());
  add(map, kdev("sdc1", 8, 33), in_partition(devices::Identity{devices::Identity::State::identified, {}, {}, {}},
                                             "cafe0002-01"));
  for (std::string text : {"/dev/sdb", "PARTUUID=cafe0002-01"}) {
    INFO(text);
    SourceState s = evaluate(map, text);
    CHECK(kind_name(s.kind) == "absent");
    CHECK(s.detail.find("holds no filesystem diskgate knows") != std::string::npos);
    CHECK(s.fstype.empty());
  }
  // No medium (a detached loop device): unreadable, still nothing to mount.
  map.apply(devices::Upsert{kdev("loop0", 7, 0, 0)});
  CHECK(kind_name(evaluate(map, "/dev/loop0").kind) == "absent");
}

TEST_CASE("source: a filesystem without a UUID is its one device") {
  devices::DeviceMap map;
  add(map, kdev("sdb", 8, 16), filesystem("vfat", ""));
  SourceState s = evaluate(map, "/dev/sdb");
  CHECK(kind_name(s.kind) == "ready");
  CHECK(s.fstype == "vfat");
  CHECK(s.device == "/dev/sdb");
  CHECK(s.members == Nodes{"/dev/sdb"});
  CHECK(s.present == 1);
  CHECK(s.expected == 1);
}

TEST_CASE("source: two ext4 devices with one UUID are ambiguous, naming both") {
  devices::DeviceMap map;
  add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid, "backup"));
  add(map, kdev("sdc", 8, 32), filesystem("ext4", ext_uuid, "backup"));
  for (std::string text : {"UUID=" + ext_uuid, std::string("LABEL=backup")}) {
    INFO(text);
    SourceState s = evaluate(map, text);
    CHECK(kind_name(s.kind) == "ambiguous");
    CHECK(s.detail.find("/dev/sdb") != std::string::npos);
    CHECK(s.detail.find("/dev/sdc") != std::string::npos);
  }
  // Named by path, one device: the filesystem still has a twin.
  SourceState by_path = evaluate(map, "/dev/sdb");
  CHECK(kind_name(by_path.kind) == "ambiguous");
  CHECK(by_path.detail.find("in conflict") != std::string::npos);

  map.apply(devices::Removed{"sdc"});
  CHECK(kind_name(evaluate(map, "UUID=" + ext_uuid).kind) == "ready");
}

TEST_CASE("source: one label on two different filesystems is ambiguous") {
  devices::DeviceMap map;
  add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid, "backup"));
  add(map, kdev("sdc", 8, 32), filesystem("ext4", "11111111-0000-4000-8000-000000000000", "backup"));
  CHECK(kind_name(evaluate(map, "LABEL=backup").kind) == "ambiguous");
}

TEST_CASE("source: a btrfs with members missing is incomplete and says which") {
  devices::DeviceMap map;
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
  SourceState s = evaluate(map, "UUID=" + fsid);
  CHECK(kind_name(s.kind) == "incomplete");
  CHECK(s.fs_uuid == fsid);
  CHECK(s.fstype == "btrfs");
  CHECK(s.label == "pool");
  CHECK(s.present == 1);
  CHECK(s.expected == 2);
  CHECK(s.missing_devids == std::vector<std::uint64_t>{1});
  CHECK(s.device == "/dev/sdb");
  CHECK(s.members == Nodes{"/dev/sdb"});
  CHECK(s.member_data == "device=/dev/sdb");
  CHECK(s.detail == "filesystem " + fsid + " has 1 of 2 members (missing devid 1)");
}

TEST_CASE("source: a complete btrfs mounts its lowest devid with every member listed by devid") {
  devices::DeviceMap map;
  add_pool(map);
  for (std::string text : {"UUID=" + fsid, fsid, std::string("LABEL=pool"), "UUID_SUB=" + sub2,
                           std::string("/dev/sdb"), std::string("/dev/sdc")}) {
    INFO(text);
    SourceState s = evaluate(map, text);
    CHECK(kind_name(s.kind) == "ready");
    CHECK(s.fs_uuid == fsid);
    CHECK(s.fstype == "btrfs");
    CHECK(s.device == "/dev/sdc");  // devid 1
    CHECK(s.members == Nodes{"/dev/sdc", "/dev/sdb"});
    CHECK(s.member_data == "device=/dev/sdc,device=/dev/sdb");
    CHECK(s.present == 2);
    CHECK(s.expected == 2);
    CHECK(s.missing_devids.empty());
    CHECK(s.detail.empty());
  }
}

TEST_CASE("source: a btrfs of three with the middle one missing") {
  devices::DeviceMap map;
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub1, 1, 3));
  add(map, kdev("sdd", 8, 48), btrfs(fsid, sub3, 3, 3));
  SourceState s = evaluate(map, "UUID=" + fsid);
  CHECK(kind_name(s.kind) == "incomplete");
  CHECK(s.present == 2);
  CHECK(s.expected == 3);
  CHECK(s.missing_devids == std::vector<std::uint64_t>{2});
  CHECK(s.member_data == "device=/dev/sdb,device=/dev/sdd");
  CHECK(s.detail.find("has 2 of 3 members (missing devid 2)") != std::string::npos);

  add(map, kdev("sdc", 8, 32), btrfs(fsid, sub2, 2, 3));
  CHECK(kind_name(evaluate(map, "UUID=" + fsid).kind) == "ready");
  CHECK(evaluate(map, "UUID=" + fsid).member_data == "device=/dev/sdb,device=/dev/sdc,device=/dev/sdd");
}

TEST_CASE("source: a dd copy of a btrfs member is ambiguous, however the source is named") {
  devices::DeviceMap map;
  add_pool(map);
  add(map, kdev("sdd", 8, 48), btrfs(fsid, sub1, 1, 2));  // a copy of devid 1 (sdc)
  SourceState by_uuid = evaluate(map, "UUID=" + fsid);
  CHECK(kind_name(by_uuid.kind) == "ambiguous");
  CHECK(by_uuid.detail.find("/dev/sdd") != std::string::npos);

  SourceState by_path = evaluate(map, "/dev/sdb");  // the untouched member
  CHECK(kind_name(by_path.kind) == "ambiguous");
  CHECK(by_path.detail.find("/dev/sdc") != std::string::npos);
  CHECK(by_path.detail.find("/dev/sdd") != std::string::npos);

  map.apply(devices::Removed{"sdd"});
  CHECK(kind_name(evaluate(map, "UUID=" + fsid).kind) == "ready");
}

TEST_CASE("source: a non-btrfs device carrying a btrfs fsid makes it ambiguous") {
  devices::DeviceMap map;
  add_pool(map);
  add(map, kdev("sdd", 8, 48), filesystem("ext4", fsid));
  CHECK(kind_name(evaluate(map, "/dev/sdb").kind) == "ambiguous");
  CHECK(kind_name(evaluate(map, "UUID=" + fsid).kind) == "ambiguous");
}

TEST_CASE("source: a member being probed again counts only while its old identity stands") {
  devices::DeviceMap map;
  add_pool(map);
  // A change event: the old identity answers until the probe's result.
  map.apply(devices::Upsert{kdev("sdb", 8, 16), true});
  REQUIRE(map.pending_probe("sdb"));
  CHECK(kind_name(evaluate(map, "UUID=" + fsid).kind) == "ready");

  // Another size: other contents, forgotten until probed.
  map.apply(devices::Upsert{kdev("sdb", 8, 16, 2 * GiB)});
  SourceState s = evaluate(map, "UUID=" + fsid);
  CHECK(kind_name(s.kind) == "incomplete");
  CHECK(s.present == 1);
  CHECK(s.missing_devids == std::vector<std::uint64_t>{2});

  identify(map, "sdb", btrfs(fsid, sub2, 2, 2));
  CHECK(kind_name(evaluate(map, "UUID=" + fsid).kind) == "ready");
}

}  // namespace
}  // namespace diskgate::gate
