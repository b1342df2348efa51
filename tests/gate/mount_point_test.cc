// MountPoint on its own, over the fake platform: what it checks before and
// after mounting, and what it leaves behind when a check fails. (The gate's
// tests drive it through the state machine; gate-e2e and fault_test.sh
// cross the real platform.)
#include "gate/mount_point.h"

#include <cerrno>

#include <catch2/catch.hpp>

#include "gate/fakes.h"

namespace diskgate::gate {
namespace {

using namespace fakes;
using Calls = std::vector<std::string>;

const std::string fsid = "f5b1a2c3-1111-4222-8333-444455556666";
const std::string sub1 = "a0000000-0000-4000-8000-000000000001";
const std::string sub2 = "a0000000-0000-4000-8000-000000000002";

// Two members in the map (the fake's disks), and the source they make.
struct Pool {
  devices::DeviceMap map;
  FakePlatform platform;
  SourceState source;
  Pool() {
    platform.disks = &map;
    add(map, kdev("sdc", 8, 32), btrfs(fsid, sub1, 1, 2));
    add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
    source = evaluate_source(map, spec("UUID=" + fsid));
    REQUIRE(source.kind == SourceState::Kind::ready);
  }
  std::vector<std::string> take_calls() { return std::exchange(platform.calls, {}); }
};

const std::string pool_mount = "mount /dev/sdc " + target + " btrfs flags=0x0 data=device=/dev/sdc,device=/dev/sdb";

TEST_CASE("mount point: mounts after checking the members, and remembers what it mounted") {
  Pool pool;
  MountPoint point(target, pool.platform, std::nullopt);
  CHECK(point.lock().empty());
  CHECK(point.locked());
  point.mount(pool.source, 0, pool.source.member_data);
  CHECK(pool.take_calls() == Calls{"lock " + target, pool_mount});
  CHECK(point.mounted());
  CHECK_FALSE(point.locked());
  CHECK(point.uuid() == fsid);
  CHECK(point.members() == std::vector<std::string>{"/dev/sdc", "/dev/sdb"});

  CHECK(point.unmount().empty());
  CHECK(pool.take_calls() == Calls{"unmount " + target, "lock " + target});
  CHECK_FALSE(point.mounted());
  CHECK(point.locked());
  CHECK(pool.platform.table.empty());
}

TEST_CASE("mount point: a member that reads differently now is refused before mount(2)") {
  Pool pool;
  MountPoint point(target, pool.platform, std::nullopt);
  pool.platform.disk_overrides["/dev/sdb"] = {{"LABEL", "pool"}, {"UUID", fsid},
                                              {"UUID_SUB", "b0000000-0000-4000-8000-00000000ffff"}, {"TYPE", "btrfs"}};
  CHECK_THROWS_WITH(point.mount(pool.source, 0, pool.source.member_data),
                    Catch::Contains("/dev/sdb") && Catch::Contains("b0000000-0000-4000-8000-00000000ffff"));
  CHECK(pool.platform.mount_count() == 0);
  CHECK_FALSE(point.mounted());
}

TEST_CASE("mount point: what the kernel mounted must be the source, else it is unmounted at once") {
  Pool pool;
  MountPoint point(target, pool.platform, std::nullopt);
  point.lock();
  os::MountedFilesystem wrong;
  wrong.uuid = fsid;
  wrong.members = {{1, sub1, "/dev/sdc"}};  // sdb's UUID_SUB is not there
  pool.platform.kernel_view = wrong;
  CHECK_THROWS_AS(point.mount(pool.source, 0, pool.source.member_data), MountError);
  CHECK(pool.take_calls() == Calls{"lock " + target, pool_mount, "unmount " + target + " lazy"});
  CHECK(pool.platform.table.empty());
  CHECK_FALSE(point.mounted());
  CHECK(point.locked());  // the directory underneath never stopped being locked
}

TEST_CASE("mount point: a mount that does not show is no mount") {
  Pool pool;
  MountPoint point(target, pool.platform, std::nullopt);
  pool.platform.mount_appears = false;
  CHECK_THROWS_WITH(point.mount(pool.source, 0, pool.source.member_data), Catch::Contains("not mounted after"));
  CHECK_FALSE(point.mounted());
}

TEST_CASE("mount point: the owner gets the root of what was mounted") {
  Pool pool;
  MountPoint point(target, pool.platform, os::Credentials{65534, 65534});
  point.mount(pool.source, 0, pool.source.member_data);
  CHECK(pool.take_calls() == Calls{pool_mount, "chown " + target + " 65534:65534"});
}

TEST_CASE("mount point: busy unmount detaches lazily; detach forgets the mount") {
  Pool pool;
  SECTION("busy") {
    MountPoint point(target, pool.platform, std::nullopt);
    point.mount(pool.source, 0, pool.source.member_data);
    pool.take_calls();
    pool.platform.unmount_errors = {EBUSY};
    CHECK(point.unmount().empty());
    CHECK(pool.take_calls() == Calls{"unmount " + target, "unmount " + target + " lazy", "lock " + target});
  }
  SECTION("detach") {
    MountPoint point(target, pool.platform, std::nullopt);
    point.mount(pool.source, 0, pool.source.member_data);
    pool.take_calls();
    CHECK(point.detach().empty());
    CHECK(pool.take_calls() == Calls{"unmount " + target + " lazy"});
    CHECK_FALSE(point.mounted());
  }
}

TEST_CASE("mount point: destroyed while mounted, it detaches; when not, it does nothing") {
  Pool pool;
  {
    MountPoint point(target, pool.platform, std::nullopt);
    point.mount(pool.source, 0, pool.source.member_data);
    pool.take_calls();
  }
  CHECK(pool.take_calls() == Calls{"unmount " + target + " lazy"});
  {
    MountPoint point(target, pool.platform, std::nullopt);
    pool.platform.unmount_errors = {EIO};
  }
  CHECK(pool.take_calls().empty());
}

TEST_CASE("mount point: adopting checks the kernel's view, and mounts nothing") {
  Pool pool;
  pool.platform.table = {os::MountEntry{0, 42, "/", target, "rw", "btrfs", "/dev/sdb", "rw"}};
  MountPoint point(target, pool.platform, std::nullopt);
  point.adopt(pool.source);
  CHECK(point.mounted());
  CHECK(pool.take_calls().empty());
  MountPoint other(target, pool.platform, std::nullopt);
  os::MountedFilesystem wrong;
  wrong.uuid = "99999999-1111-4222-8333-444455556666";
  pool.platform.kernel_view = wrong;
  CHECK_THROWS_AS(other.adopt(pool.source), MountError);
  CHECK_FALSE(other.mounted());
}

}  // namespace
}  // namespace diskgate::gate
