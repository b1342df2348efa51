// The gate's state machine, driven by a real device map fed synthetic
// events, against a FakePlatform (records every mount, unmount, lock, spawn
// and signal) and a ManualLoop (time moves only when the test says so).
// Tests marked "DISAGREED" pin down a bug the tests found in the gate.
#include "gate/gate.h"

#include <signal.h>
#include <sys/mount.h>

#include <cerrno>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "gate/fakes.h"

namespace diskgate::gate {
namespace {

using namespace fakes;
using Calls = std::vector<std::string>;
using States = std::vector<State>;

const std::string ext_uuid = "0a1b2c3d-0000-4000-8000-00000000abcd";
const std::string fsid = "f5b1a2c3-1111-4222-8333-444455556666";
const std::string other_fsid = "99999999-1111-4222-8333-444455556666";
const std::string sub1 = "a0000000-0000-4000-8000-000000000001";
const std::string sub2 = "a0000000-0000-4000-8000-000000000002";

const std::string lock_line = "lock " + target;
const std::string unmount_line = "unmount " + target;
const std::string lazy_unmount_line = "unmount " + target + " lazy";
const std::string spawn_line = "spawn rest-server --path " + target + " --no-auth";
// The two-device pool: devid 1 on sdc, devid 2 on sdb, so that devid order
// and name order differ.
const std::string pool_data = "device=/dev/sdc,device=/dev/sdb";

std::string mount_line(const std::string& source, const std::string& fstype, unsigned long flags,
                       const std::string& data) {
  return fmt::format("mount {} {} {} flags={:#x} data={}", source, target, fstype, flags, data);
}
const std::string pool_mount = mount_line("/dev/sdc", "btrfs", 0, pool_data);

std::string signal_line(pid_t pid, const char* name) { return fmt::format("signal {} {}", pid, name); }

devices::KernelDevice sdb() { return kdev("sdb", 8, 16); }
devices::KernelDevice sdc() { return kdev("sdc", 8, 32); }
devices::Identity member1() { return btrfs(fsid, sub1, 1, 2); }
devices::Identity member2() { return btrfs(fsid, sub2, 2, 2); }

Config pool_config() { return config_for("UUID=" + fsid); }

// Both members arrive one after the other; the program runs.
void bring_up(Harness& h) {
  h.add(sdb(), member2());
  h.add(sdc(), member1());
  REQUIRE(h.state() == State::running);
  REQUIRE(h.take_calls() == Calls{lock_line, pool_mount, spawn_line});
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

long long next_timer_ms(const ManualLoop& loop) {
  auto next = loop.next_timer();
  return next ? std::chrono::duration_cast<std::chrono::milliseconds>(*next).count() : -1;
}

// ---- Waiting and mounting ----

TEST_CASE("gate: with nothing to mount it waits, locking the bare target once") {
  Harness h(pool_config());
  h.update();
  CHECK(h.state() == State::waiting);
  CHECK(h.take_calls() == Calls{lock_line});
  CHECK_FALSE(h.statuses.empty());
  h.add(kdev("sda", 8, 0), filesystem("ext4", ext_uuid));
  h.update();
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::waiting);
}

TEST_CASE("gate: a btrfs with one of two members waits; the second mounts it, then the program starts") {
  Harness h(pool_config());
  h.add(sdb(), member2());
  CHECK(h.state() == State::waiting);
  CHECK(h.take_calls() == Calls{lock_line});
  CHECK(h.status().members_present == 1);
  CHECK(h.status().members_expected == 2);
  CHECK(h.status().fstype == "btrfs");
  CHECK(h.status().program_pid == 0);

  h.add(sdc(), member1());
  CHECK(h.take_calls() == Calls{pool_mount, spawn_line});
  CHECK(h.state() == State::running);
  CHECK(h.seen_states() == States{State::waiting, State::mounting, State::mounted, State::running});

  const Status& s = h.status();
  CHECK(s.device == "/dev/sdc");  // the lowest devid
  CHECK(s.fstype == "btrfs");
  CHECK(s.members_present == 2);
  CHECK(s.members_expected == 2);
  CHECK(s.mount_data == pool_data);
  CHECK(s.program_pid == h.platform.last_pid());
  CHECK(s.restarts == 0);
  CHECK(s.last_error.empty());
  CHECK_FALSE(s.degraded);
  CHECK(s.mounted_at_usec == h.now_usec());
  CHECK(s.started_at_usec == h.now_usec());
  CHECK(h.loop.watching(h.platform.pidfd_of(s.program_pid)));

  // Later map changes with the members in place change nothing.
  h.add(kdev("sdd", 8, 48), filesystem("ext4", ext_uuid));
  h.update();
  h.remove("sdd");
  CHECK(h.take_calls().empty());
  CHECK(h.platform.mount_count() == 0);  // taken above: exactly one mount in all
  CHECK(h.platform.spawn_count() == 1);
}

TEST_CASE("gate: a single-device filesystem mounts as soon as it is identified") {
  Harness h(config_for("LABEL=backup"));
  h.upsert(kdev("sdb1", 8, 17));
  CHECK(h.take_calls() == Calls{lock_line});  // being probed: wait
  h.identify("sdb1", filesystem("ext4", ext_uuid, "backup"));
  CHECK(h.take_calls() == Calls{mount_line("/dev/sdb1", "ext4", 0, ""), spawn_line});
  CHECK(h.state() == State::running);
  CHECK(h.status().members_present == 1);
  CHECK(h.status().members_expected == 1);
  CHECK(h.status().mount_data.empty());
}

TEST_CASE("gate: --fstype must agree with the probe") {
  Config config = pool_config();
  SECTION("disagreeing: failed, naming both types, nothing mounted") {
    config.fstype = "ext4";
    Harness h(config);
    h.add(sdb(), member2());
    h.add(sdc(), member1());
    CHECK(h.state() == State::failed);
    CHECK(contains(h.status().last_error, "ext4"));
    CHECK(contains(h.status().last_error, "btrfs"));
    CHECK(h.platform.mount_count() == 0);
    CHECK(h.platform.spawn_count() == 0);
  }
  SECTION("agreeing: mounted with that type") {
    config.fstype = "btrfs";
    Harness h(config);
    bring_up(h);
  }
}

TEST_CASE("gate: mount flags pass through; data is members, degraded, --options data, --data") {
  SECTION("btrfs") {
    Config config = pool_config();
    config.options = MountOptions{MS_NOATIME | MS_NODEV, "compress=zstd:3"};
    config.data = "space_cache=v2";
    Harness h(config);
    h.add(sdb(), member2());
    h.add(sdc(), member1());
    CHECK(h.take_calls() == Calls{lock_line,
                                  mount_line("/dev/sdc", "btrfs", MS_NOATIME | MS_NODEV,
                                             pool_data + ",compress=zstd:3,space_cache=v2"),
                                  spawn_line});
    CHECK(h.status().mount_data == pool_data + ",compress=zstd:3,space_cache=v2");
  }
  SECTION("ext4: no device list") {
    Config config = config_for("UUID=" + ext_uuid);
    config.options = MountOptions{MS_RDONLY, "errors=remount-ro"};
    config.data = "commit=30";
    Harness h(config);
    h.add(sdb(), filesystem("ext4", ext_uuid));
    CHECK(h.take_calls() ==
          Calls{lock_line, mount_line("/dev/sdb", "ext4", MS_RDONLY, "errors=remount-ro,commit=30"), spawn_line});
  }
  SECTION("degraded comes after the device list") {
    Config config = pool_config();
    config.options = MountOptions{MS_NOATIME, "compress=zstd"};
    config.data = "commit=120";
    config.degraded_after = std::chrono::seconds(30);
    Harness h(config);
    h.add(sdb(), member2());
    h.advance(30s);
    CHECK(h.take_calls() ==
          Calls{lock_line, mount_line("/dev/sdb", "btrfs", MS_NOATIME, "device=/dev/sdb,degraded,compress=zstd,commit=120"),
                spawn_line});
  }
}

TEST_CASE("gate: a failing mount is failed with the error, and retried after a backoff, not on every change") {
  Harness h(pool_config());
  h.platform.mount_errors = {EINVAL, EIO, EIO};
  h.add(sdb(), member2());
  h.add(sdc(), member1());
  CHECK(h.take_calls() == Calls{lock_line, pool_mount});
  CHECK(h.state() == State::failed);
  CHECK(h.status().last_error == "mount /dev/sdc on /srv/backup (btrfs): Invalid argument");
  CHECK(h.status().program_pid == 0);

  // Map changes while failed do not hammer mount(2).
  h.add(kdev("sdd", 8, 48), unidentified());
  h.remove("sdd");
  CHECK(h.take_calls().empty());
  // 1 s, then 2 s, then 4 s.
  h.advance(999ms);
  CHECK(h.take_calls().empty());
  h.advance(1ms);
  CHECK(h.take_calls() == Calls{pool_mount});
  CHECK(h.state() == State::failed);
  h.advance(1999ms);
  CHECK(h.take_calls().empty());
  h.advance(1ms);
  CHECK(h.take_calls() == Calls{pool_mount});
  CHECK(next_timer_ms(h.loop) == 4000);
  h.advance(4s);
  CHECK(h.take_calls() == Calls{pool_mount, spawn_line});
  CHECK(h.state() == State::running);
  CHECK(h.status().last_error.empty());
}

// ---- What is already mounted at the target ----

os::MountEntry entry(const std::string& source, const std::string& fstype, const std::string& super_options = "rw") {
  return os::MountEntry{0, 42, "/", target, "rw,relatime", fstype, source, super_options};
}

TEST_CASE("gate: our filesystem already mounted at the target is adopted") {
  SECTION("btrfs, mounted through its second member") {
    Harness h(pool_config());
    h.platform.table = {entry("/dev/sdb", "btrfs", "rw,space_cache=v2,subvolid=5,subvol=/")};
    // The daemon's first update can already see the whole map.
    add(h.map, sdb(), member2());
    add(h.map, sdc(), member1());
    h.update();
    CHECK(h.take_calls() == Calls{spawn_line});  // no lock, no mount
    CHECK(h.state() == State::running);
    CHECK(h.status().mount_data == "rw,space_cache=v2,subvolid=5,subvol=/");
    CHECK(h.status().device == "/dev/sdc");
    CHECK(h.status().last_error.empty());

    // Adopted means ours: a member going away unmounts it.
    h.remove("sdb");
    h.kill_program(SIGTERM);
    CHECK(h.take_calls() == Calls{signal_line(FakePlatform::first_pid, "SIGTERM"), unmount_line, lock_line});
    CHECK(h.platform.table.empty());
    CHECK(h.state() == State::waiting);
  }
  SECTION("ext4") {
    Harness h(config_for("UUID=" + ext_uuid));
    h.platform.table = {entry("/dev/sdb", "ext4")};
    h.add(sdb(), filesystem("ext4", ext_uuid));
    CHECK(h.take_calls() == Calls{spawn_line});
    CHECK(h.state() == State::running);
  }
}

TEST_CASE("gate: our btrfs already mounted is adopted when its members are identified one by one") {
  // DISAGREED (fixed in gate.cc): with one member identified the source was
  // incomplete, and the gate called our own mount "not UUID=..." and failed.
  Harness h(pool_config());
  h.platform.table = {entry("/dev/sdb", "btrfs")};
  h.add(sdb(), member2());
  CHECK(h.state() != State::failed);
  CHECK(h.status().last_error.empty());
  h.add(sdc(), member1());
  CHECK(h.take_calls() == Calls{spawn_line});
  CHECK(h.state() == State::running);
  CHECK(h.status().last_error.empty());
}

TEST_CASE("gate: anything else mounted at the target is refused, saying what is there") {
  Harness h(config_for("UUID=" + ext_uuid));
  std::string source, fstype;
  SECTION("a device the map does not know") {
    h.platform.table = {entry("/dev/sdz", "xfs")};
    source = "/dev/sdz";
    fstype = "xfs";
  }
  SECTION("tmpfs") {
    h.platform.table = {entry("tmpfs", "tmpfs")};
    source = fstype = "tmpfs";
  }
  SECTION("another filesystem the map knows") {
    add(h.map, kdev("sdd", 8, 48), filesystem("ext4", "11111111-0000-4000-8000-000000000000"));
    h.platform.table = {entry("/dev/sdd", "ext4")};
    source = "/dev/sdd";
    fstype = "ext4";
  }
  // The whole map at the first update, as a daemon starting finds it (the
  // arrival one by one is the next test case).
  add(h.map, sdb(), filesystem("ext4", ext_uuid));
  h.update();
  CHECK(h.state() == State::failed);
  INFO(h.status().last_error);
  CHECK(contains(h.status().last_error, source));
  CHECK(contains(h.status().last_error, fstype));
  CHECK(h.take_calls().empty());  // no lock (it would hit the other filesystem), no mount, no spawn

  // Still there at the retry: still refused.
  h.add(kdev("sde", 8, 64), unidentified());
  h.advance(1s);
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::failed);

  // Gone: the next retry mounts ours.
  h.platform.table.clear();
  h.remove("sde");
  CHECK(h.take_calls().empty());
  h.advance(2s);
  CHECK(h.take_calls() == Calls{lock_line, mount_line("/dev/sdb", "ext4", 0, ""), spawn_line});
  CHECK(h.state() == State::running);
  CHECK(h.status().last_error.empty());
}

TEST_CASE("gate: while refused, what the source resolves to is still published") {
  // DISAGREED (fixed in gate.cc): in failed, evaluate() updates Device, FsType and
  // Members* and then only calls set_error/set_state, which publish nothing
  // when neither changed; D-Bus shows stale values.
  Harness h(config_for("UUID=" + ext_uuid));
  h.platform.table = {entry("/dev/sdz", "xfs")};
  h.upsert(sdb());
  REQUIRE(h.state() == State::failed);
  h.identify("sdb", filesystem("ext4", ext_uuid));  // Harness checks the listener saw it
  CHECK(h.statuses.back().device == "/dev/sdb");
  CHECK(h.statuses.back().fstype == "ext4");
  CHECK(h.statuses.back().members_present == 1);
}

// ---- The program ending ----

TEST_CASE("gate: restart=always restarts after 1 s, doubling to 60 s, reset after 60 s of running") {
  Harness h(pool_config());
  bring_up(h);
  pid_t first = h.status().program_pid;
  h.exit_program(3);
  CHECK(h.state() == State::mounted);
  CHECK(h.status().restarts == 1);
  CHECK(h.status().last_exit_status == "exited with status 3");
  CHECK(h.status().program_pid == 0);
  CHECK_FALSE(h.loop.watching(h.platform.pidfd_of(first)));
  CHECK(h.platform.open_pidfds() == 0);
  CHECK(h.take_calls().empty());  // the mount stays

  const long long delays[] = {1'000, 2'000, 4'000, 8'000, 16'000, 32'000, 60'000, 60'000};
  for (std::size_t i = 0; i < std::size(delays); ++i) {
    INFO("restart " << i + 1);
    if (i > 0) h.exit_program(3);
    CHECK(h.status().restarts == i + 1);
    REQUIRE(next_timer_ms(h.loop) == delays[i]);
    h.advance(std::chrono::milliseconds(delays[i] - 1));
    CHECK(h.take_calls().empty());
    CHECK(h.state() == State::mounted);
    h.advance(1ms);
    CHECK(h.take_calls() == Calls{spawn_line});
    CHECK(h.state() == State::running);
    CHECK(h.status().program_pid == h.platform.last_pid());
  }

  SECTION("a run of 59 s keeps the backoff") {
    h.advance(59s);
    h.kill_program(SIGSEGV);
    CHECK(h.status().last_exit_status == "killed by signal 11");
    CHECK(next_timer_ms(h.loop) == 60'000);
    CHECK(h.status().restarts == std::size(delays) + 1);
  }
  SECTION("a run of 60 s resets it") {
    h.advance(60s);
    h.exit_program(3);
    CHECK(next_timer_ms(h.loop) == 1'000);
    h.advance(1s);
    h.exit_program(3);
    CHECK(next_timer_ms(h.loop) == 2'000);
    CHECK(h.status().restarts == std::size(delays) + 2);
  }
}

TEST_CASE("gate: restart=on-failure and restart=no") {
  Config config = pool_config();
  struct Case {
    RestartPolicy policy;
    os::ExitStatus exit;
    std::optional<int> finished;  // nullopt: restarted
  };
  auto [policy, exit, finished] = GENERATE(values<Case>({
      {RestartPolicy::on_failure, {false, 0}, 0},
      {RestartPolicy::on_failure, {false, 3}, std::nullopt},
      {RestartPolicy::on_failure, {true, SIGKILL}, std::nullopt},
      {RestartPolicy::no, {false, 0}, 0},
      {RestartPolicy::no, {false, 3}, 3},
      {RestartPolicy::no, {true, SIGKILL}, 128 + SIGKILL},
      {RestartPolicy::always, {false, 0}, std::nullopt},
  }));
  INFO("policy " << static_cast<int>(policy) << ", signalled " << exit.signalled << ", code " << exit.code);
  config.restart = policy;
  Harness h(config);
  bring_up(h);
  h.end_program(exit);
  if (finished) {
    // Unmounted first, then the daemon is told to exit with the code.
    CHECK(h.take_calls() == Calls{unmount_line, lock_line, fmt::format("finished {}", *finished)});
    CHECK(h.finished == std::vector<int>{*finished});
    CHECK(h.state() == State::stopped);
    CHECK(h.platform.table.empty());
    CHECK(h.loop.pending_timers() == 0);
    // Nothing happens after.
    h.remove("sdb");
    h.add(sdb(), member2());
    h.advance(10min);
    CHECK(h.take_calls().empty());
  } else {
    CHECK(h.take_calls().empty());
    CHECK(h.state() == State::mounted);
    CHECK(next_timer_ms(h.loop) == 1'000);
    h.advance(1s);
    CHECK(h.take_calls() == Calls{spawn_line});
    CHECK(h.finished.empty());
  }
}

TEST_CASE("gate: a program that cannot be started is a failed start, with backoff") {
  Harness h(pool_config());
  SECTION("at the first start") {
    h.platform.spawn_errors = {ENOENT, ENOENT, ENOENT};
    h.add(sdb(), member2());
    h.add(sdc(), member1());
    CHECK(h.take_calls() == Calls{lock_line, pool_mount, spawn_line});
  }
  SECTION("after a long healthy run") {
    bring_up(h);
    h.advance(10min);
    h.exit_program(1);
    CHECK(next_timer_ms(h.loop) == 1'000);
    h.platform.spawn_errors = {ENOENT, ENOENT, ENOENT};
    h.advance(1s);
    CHECK(h.take_calls() == Calls{spawn_line});
  }
  // DISAGREES (fixed in gate.cc): the healthy-run reset compared the time of
  // the failure with the last *successful* start (or with time zero), so a
  // program that cannot start was retried every second, for ever.
  long long expected = h.status().restarts == 1 ? 1'000 : 2'000;
  std::uint32_t restarts = h.status().restarts;
  CHECK(h.state() == State::mounted);
  CHECK(h.status().last_exit_status == "could not be started");
  CHECK(contains(h.status().last_error, "No such file or directory"));
  CHECK(h.status().program_pid == 0);
  for (int attempt = 0; attempt < 2; ++attempt) {
    INFO("attempt " << attempt);
    REQUIRE(next_timer_ms(h.loop) == expected);
    h.advance(std::chrono::milliseconds(expected));
    CHECK(h.take_calls() == Calls{spawn_line});
    CHECK(h.status().restarts == ++restarts);
    expected *= 2;
  }
  // The third attempt in each section fails; the next one starts.
  if (!h.platform.spawn_errors.empty()) {
    REQUIRE(next_timer_ms(h.loop) == expected);
    h.advance(std::chrono::milliseconds(expected));
    CHECK(h.take_calls() == Calls{spawn_line});
    expected *= 2;
  }
  REQUIRE(next_timer_ms(h.loop) == expected);
  h.advance(std::chrono::milliseconds(expected));
  CHECK(h.take_calls() == Calls{spawn_line});
  CHECK(h.state() == State::running);
}

TEST_CASE("gate: restart=no and a program that cannot be started: unmount and finish with 127") {
  Config config = pool_config();
  config.restart = RestartPolicy::no;
  Harness h(config);
  h.platform.spawn_errors = {ENOENT};
  h.add(sdb(), member2());
  h.add(sdc(), member1());
  CHECK(h.take_calls() == Calls{lock_line, pool_mount, spawn_line, unmount_line, lock_line, "finished 127"});
  CHECK(h.state() == State::stopped);
}

TEST_CASE("gate: a readable pidfd with the child still running changes nothing") {
  Harness h(pool_config());
  bring_up(h);
  int fd = h.platform.pidfd_of(h.status().program_pid);
  CHECK(h.loop.fire(fd));
  h.check_published();
  CHECK(h.state() == State::running);
  CHECK(h.loop.watching(fd));
  CHECK(h.take_calls().empty());
}

// ---- A member going away ----

TEST_CASE("gate: a member going away stops the program, unmounts, and waits; its return mounts again") {
  Harness h(pool_config());
  bring_up(h);
  pid_t pid = h.status().program_pid;
  SECTION("removed") { h.remove("sdb"); }
  SECTION("no medium (a detached loop device)") { h.upsert(kdev("sdb", 8, 16, 0)); }
  SECTION("re-identified as another filesystem") {
    h.upsert(sdb(), true);
    REQUIRE(h.take_calls().empty());  // being probed is not gone
    h.identify("sdb", filesystem("ext4", ext_uuid));
  }
  SECTION("re-identified as another btrfs") {
    h.upsert(sdb(), true);
    h.identify("sdb", btrfs(other_fsid, sub2, 2, 2));
  }
  SECTION("found to hold nothing") {
    h.upsert(sdb(), true);
    h.identify("sdb", unidentified());
  }
  SECTION("the other member removed") { h.remove("sdc"); }

  CHECK(h.take_calls() == Calls{signal_line(pid, "SIGTERM")});
  CHECK(h.state() == State::stopping);
  CHECK(h.platform.table.size() == 1);  // not before the program is gone

  h.kill_program(SIGTERM);
  CHECK(h.take_calls() == Calls{unmount_line, lock_line});
  CHECK(h.state() == State::waiting);
  CHECK(h.platform.table.empty());
  CHECK(h.status().program_pid == 0);
  CHECK(h.status().mount_data.empty());
  CHECK(h.status().last_exit_status == "killed by signal 15");
  CHECK(h.status().restarts == 0);  // a stop we asked for is not a restart
  CHECK(h.loop.pending_timers() == 0);
  h.advance(10min);
  CHECK(h.take_calls().empty());

  // The member comes back.
  for (const char* name : {"sdb", "sdc"}) {
    const devices::Device* device = h.map.find(name);
    bool member = device && device->kernel.size_bytes > 0 &&
                  device->identity.state == devices::Identity::State::identified &&
                  device->identity.btrfs && device->identity.btrfs->fsid == fsid;
    if (device && !member) h.remove(name);
    if (!member) h.add(std::string(name) == "sdb" ? sdb() : sdc(), std::string(name) == "sdb" ? member2() : member1());
  }
  CHECK(h.take_calls() == Calls{pool_mount, spawn_line});
  CHECK(h.state() == State::running);
  CHECK(h.status().program_pid != pid);
}

TEST_CASE("gate: a busy target is detached lazily, only after the program is gone") {
  Harness h(pool_config());
  bring_up(h);
  pid_t pid = h.status().program_pid;
  h.platform.unmount_errors = {EBUSY};
  h.remove("sdb");
  CHECK(h.take_calls() == Calls{signal_line(pid, "SIGTERM")});
  h.exit_program(0);
  CHECK(h.take_calls() == Calls{unmount_line, lazy_unmount_line, lock_line});
  CHECK(h.platform.table.empty());
  CHECK(h.state() == State::waiting);
}

TEST_CASE("gate: a target unmounted behind our back is no error when we unmount") {
  Harness h(pool_config());
  bring_up(h);
  h.remove("sdb");
  h.platform.table.clear();  // umount2 gives EINVAL
  h.exit_program(0);
  CHECK(h.take_calls() == Calls{signal_line(FakePlatform::first_pid, "SIGTERM"), unmount_line, lock_line});
  CHECK(h.status().last_error.empty());
  CHECK(h.state() == State::waiting);
}

TEST_CASE("gate: a program ignoring SIGTERM gets SIGKILL after the stop timeout") {
  Config config = pool_config();
  config.stop_timeout = std::chrono::milliseconds(5'000);
  Harness h(config);
  bring_up(h);
  pid_t pid = h.status().program_pid;
  h.remove("sdb");
  CHECK(h.take_calls() == Calls{signal_line(pid, "SIGTERM")});
  SECTION("ignored") {
    h.advance(4'999ms);
    CHECK(h.take_calls().empty());
    h.advance(1ms);
    CHECK(h.take_calls() == Calls{signal_line(pid, "SIGKILL")});
    CHECK(h.state() == State::stopping);
    h.kill_program(SIGKILL);
    CHECK(h.status().last_exit_status == "killed by signal 9");
  }
  SECTION("obeyed in time: no SIGKILL") {
    h.advance(2s);
    h.exit_program(0);
    h.advance(1h);
  }
  CHECK(h.take_calls() == Calls{unmount_line, lock_line});
  CHECK(h.state() == State::waiting);
  h.advance(1h);
  CHECK(h.take_calls().empty());
}

TEST_CASE("gate: a member being probed again does not stop the program") {
  Harness h(pool_config());
  bring_up(h);
  for (const char* name : {"sdb", "sdc"}) {
    INFO(name);
    h.upsert(kdev(name, 8, std::string(name) == "sdb" ? 16 : 32), true);
    CHECK(h.take_calls().empty());
    CHECK(h.state() == State::running);
    h.identify(name, std::string(name) == "sdb" ? member2() : member1());
    CHECK(h.take_calls().empty());
    CHECK(h.state() == State::running);
  }
  // Both at once, too.
  h.upsert(sdb(), true);
  h.upsert(sdc(), true);
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::running);
  h.identify("sdb", member2());
  h.identify("sdc", member1());

  // A new size forgets the identity (unprobed) until the probe answers: a
  // grown loop device is still the member, and being probed is not gone.
  h.upsert(kdev("sdb", 8, 16, 2 * GiB));
  REQUIRE(h.map.find("sdb")->identity.state == devices::Identity::State::unprobed);
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::running);
  h.identify("sdb", member2());
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::running);
}

TEST_CASE("gate: a member leaving during the restart backoff unmounts without starting the program") {
  Harness h(pool_config());
  bring_up(h);
  h.exit_program(3);
  h.remove("sdc");
  CHECK(h.take_calls() == Calls{unmount_line, lock_line});
  CHECK(h.state() == State::waiting);
  h.advance(1min);
  CHECK(h.take_calls().empty());
}

TEST_CASE("gate: a member flapping while the program stops is mounted again afterwards") {
  Harness h(pool_config());
  bring_up(h);
  h.remove("sdb");
  h.add(sdb(), member2());
  CHECK(h.take_calls() == Calls{signal_line(FakePlatform::first_pid, "SIGTERM")});
  h.exit_program(0);
  CHECK(h.take_calls() == Calls{unmount_line, lock_line, pool_mount, spawn_line});
  CHECK(h.state() == State::running);
}

// ---- Never running on the bare directory ----

TEST_CASE("gate: the program is never started on an unmounted target") {
  Harness h(pool_config());
  SECTION("the mount does not show in the mount table") {
    h.platform.mount_appears = false;
    h.add(sdb(), member2());
    h.add(sdc(), member1());
    CHECK(h.take_calls() == Calls{lock_line, pool_mount});
    CHECK(h.platform.spawn_count() == 0);
    // Failed, not waiting: mounting again at once would loop.
    CHECK(h.state() == State::failed);
    CHECK(contains(h.status().last_error, "not mounted"));
  }
  SECTION("unmounted behind our back during the backoff: mounted again before the start") {
    bring_up(h);
    h.exit_program(3);
    h.platform.table.clear();
    h.advance(1s);
    CHECK(h.take_calls() == Calls{lock_line, pool_mount, spawn_line});
    CHECK(h.state() == State::running);
  }
  // Harness checks every spawn saw a mount at the target.
}

TEST_CASE("gate: a target that cannot be locked fails the gate: nothing mounted, retried after the backoff") {
  Harness h(pool_config());
  h.platform.lock_errors = {ELOOP};
  add(h.map, sdb(), member2());
  add(h.map, sdc(), member1());
  CHECK_NOTHROW(h.gate->update(h.map));  // never into the daemon's loop
  h.check_published();
  CHECK(h.take_calls() == Calls{lock_line});
  CHECK(h.state() == State::failed);
  CHECK(contains(h.status().last_error, "lock_directory"));
  CHECK(contains(h.status().last_error, "Too many levels of symbolic links"));

  h.add(kdev("sdd", 8, 48), unidentified());
  CHECK(h.take_calls().empty());
  h.advance(1s);
  CHECK(h.take_calls() == Calls{lock_line, pool_mount, spawn_line});
  CHECK(h.state() == State::running);
}

// ---- D-Bus methods ----

TEST_CASE("gate: Stop stops, unmounts and holds; Start mounts again") {
  Harness h(pool_config());
  bring_up(h);
  pid_t pid = h.status().program_pid;
  SECTION("while running") {
    h.stop();
    CHECK(h.take_calls() == Calls{signal_line(pid, "SIGTERM")});
    CHECK(h.state() == State::stopping);
    h.kill_program(SIGTERM);
    CHECK(h.take_calls() == Calls{unmount_line, lock_line});
  }
  SECTION("during the restart backoff") {
    h.exit_program(3);
    h.stop();
    CHECK(h.take_calls() == Calls{unmount_line, lock_line});
  }
  CHECK(h.state() == State::stopped);
  CHECK(h.platform.table.empty());
  CHECK(h.finished.empty());  // Stop is not the end of the daemon

  // Held: map changes and time do nothing.
  h.remove("sdb");
  h.add(sdb(), member2());
  h.advance(10min);
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::stopped);
  h.stop();
  CHECK(h.take_calls().empty());

  h.start();
  CHECK(h.take_calls() == Calls{pool_mount, spawn_line});
  CHECK(h.state() == State::running);
}

TEST_CASE("gate: Stop while waiting holds; Start mounts once the source is there") {
  Harness h(pool_config());
  h.add(sdb(), member2());
  CHECK(h.take_calls() == Calls{lock_line});
  h.stop();
  CHECK(h.state() == State::stopped);
  h.add(sdc(), member1());
  CHECK(h.take_calls().empty());
  h.start();
  CHECK(h.take_calls() == Calls{pool_mount, spawn_line});
  CHECK(h.state() == State::running);
}

TEST_CASE("gate: Start retries after failed") {
  Config config = pool_config();
  Harness h(config);
  h.platform.mount_errors = {EIO};
  h.add(sdb(), member2());
  h.add(sdc(), member1());
  REQUIRE(h.state() == State::failed);
  h.take_calls();
  h.start();
  CHECK(h.take_calls() == Calls{pool_mount, spawn_line});
  CHECK(h.state() == State::running);
  CHECK(h.status().last_error.empty());
}

TEST_CASE("gate: Stop while a member-loss stop is under way does not SIGKILL the next program") {
  // DISAGREES (fixed in gate.cc): a second stop_program re-armed the kill
  // timer without cancelling the first, which then fired on the program
  // started afterwards.
  Config config = pool_config();
  config.stop_timeout = std::chrono::milliseconds(10'000);
  Harness h(config);
  bring_up(h);
  h.remove("sdb");
  h.advance(1s);
  h.stop();
  h.advance(1s);
  h.kill_program(SIGTERM);
  CHECK(h.state() == State::stopped);
  h.add(sdb(), member2());
  h.start();
  REQUIRE(h.state() == State::running);
  pid_t next = h.status().program_pid;
  h.advance(1min);
  for (const std::string& call : h.take_calls()) CHECK(call != signal_line(next, "SIGKILL"));
  CHECK(h.state() == State::running);
}

TEST_CASE("gate: Restart stops and starts the program, keeping the mount") {
  Config config = pool_config();
  config.stop_timeout = std::chrono::milliseconds(3'000);
  Harness h(config);
  bring_up(h);
  pid_t pid = h.status().program_pid;
  h.restart_program();
  CHECK(h.take_calls() == Calls{signal_line(pid, "SIGTERM")});
  CHECK(h.state() == State::stopping);
  SECTION("obeying SIGTERM") { h.kill_program(SIGTERM); }
  SECTION("ignoring SIGTERM") {
    h.advance(3s);
    CHECK(h.take_calls() == Calls{signal_line(pid, "SIGKILL")});
    h.kill_program(SIGKILL);
  }
  CHECK(h.take_calls() == Calls{spawn_line});
  CHECK(h.state() == State::running);
  CHECK(h.status().program_pid == h.platform.last_pid());
  CHECK(h.status().program_pid != pid);
  CHECK(h.platform.table.size() == 1);
  CHECK(h.status().mount_data == pool_data);
}

TEST_CASE("gate: Restart during the backoff starts at once") {
  Harness h(pool_config());
  bring_up(h);
  h.exit_program(3);
  REQUIRE(next_timer_ms(h.loop) == 1'000);
  h.restart_program();
  CHECK(h.take_calls() == Calls{spawn_line});
  CHECK(h.state() == State::running);
  h.advance(1min);
  CHECK(h.take_calls().empty());
  CHECK(h.platform.spawn_count() == 2);
}

TEST_CASE("gate: Restart while waiting does nothing") {
  Harness h(pool_config());
  h.add(sdb(), member2());
  h.take_calls();
  h.restart_program();
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::waiting);
}

TEST_CASE("gate: a member leaving while Restart stops the program: no start, unmount") {
  // DISAGREES (fixed in gate.cc): the restart continuation started the
  // program again without looking at the map, on a filesystem with a member
  // gone, until the next map change.
  Harness h(pool_config());
  bring_up(h);
  h.restart_program();
  h.remove("sdb");
  CHECK(h.take_calls() == Calls{signal_line(FakePlatform::first_pid, "SIGTERM")});
  h.kill_program(SIGTERM);
  CHECK(h.take_calls() == Calls{unmount_line, lock_line});
  CHECK(h.state() == State::waiting);
  CHECK(h.platform.spawn_count() == 1);
}

TEST_CASE("gate: ReloadProgram sends SIGHUP to the group only while the program runs") {
  Harness h(pool_config());
  h.reload_program();
  h.add(sdb(), member2());
  h.reload_program();
  CHECK(h.take_calls() == Calls{lock_line});
  h.add(sdc(), member1());
  h.take_calls();
  pid_t pid = h.status().program_pid;
  h.reload_program();
  CHECK(h.take_calls() == Calls{signal_line(pid, "SIGHUP")});
  CHECK(h.state() == State::running);
  h.exit_program(1);
  h.reload_program();  // in the backoff
  CHECK(h.take_calls().empty());
}

// ---- Daemon exit ----

TEST_CASE("gate: shutdown stops the program, unmounts, calls done once, and nothing happens after") {
  Config config = pool_config();
  config.stop_timeout = std::chrono::milliseconds(4'000);
  config.degraded_after = std::chrono::seconds(30);
  Harness h(config);
  Calls expected;
  SECTION("running") {
    bring_up(h);
    h.shutdown();
    CHECK(h.take_calls() == Calls{signal_line(FakePlatform::first_pid, "SIGTERM")});
    CHECK(h.done == 0);
    h.kill_program(SIGTERM);
    expected = {unmount_line, lock_line, "done"};
  }
  SECTION("running, ignoring SIGTERM") {
    bring_up(h);
    h.shutdown();
    h.advance(4s);
    CHECK(h.take_calls() == Calls{signal_line(FakePlatform::first_pid, "SIGTERM"),
                                  signal_line(FakePlatform::first_pid, "SIGKILL")});
    CHECK(h.done == 0);
    h.kill_program(SIGKILL);
    expected = {unmount_line, lock_line, "done"};
  }
  SECTION("busy target") {
    bring_up(h);
    h.platform.unmount_errors = {EBUSY};
    h.shutdown();
    h.take_calls();
    h.exit_program(0);
    expected = {unmount_line, lazy_unmount_line, lock_line, "done"};
  }
  SECTION("during the restart backoff") {
    bring_up(h);
    h.exit_program(3);
    h.shutdown();
    expected = {unmount_line, lock_line, "done"};
  }
  SECTION("while a member-loss stop is under way") {
    bring_up(h);
    h.remove("sdb");
    h.shutdown();
    h.take_calls();
    h.exit_program(0);
    expected = {unmount_line, lock_line, "done"};
  }
  SECTION("waiting, with the degraded timer armed") {
    h.add(sdb(), member2());
    h.take_calls();
    h.shutdown();
    expected = {"done"};
  }
  SECTION("waiting for nothing") {
    h.update();
    h.take_calls();
    h.shutdown();
    expected = {"done"};
  }
  CHECK(h.take_calls() == expected);
  CHECK(h.done == 1);
  CHECK(h.state() == State::stopped);
  CHECK(h.platform.table.empty());
  CHECK(h.finished.empty());

  // Nothing is mounted or started afterwards.
  if (!h.map.find("sdb")) h.add(sdb(), member2());
  if (!h.map.find("sdc")) h.add(sdc(), member1());
  h.update();
  h.advance(1h);
  h.start();  // a D-Bus call arriving late
  h.restart_program();
  h.update();
  CHECK(h.take_calls().empty());
  CHECK(h.done == 1);
  CHECK(h.platform.table.empty());
}

// ---- --degraded-after ----

TEST_CASE("gate: --degraded-after mounts an incomplete btrfs degraded, and says so") {
  Config config = pool_config();
  config.degraded_after = std::chrono::seconds(30);
  Harness h(config);
  h.add(sdb(), member2());
  CHECK(h.take_calls() == Calls{lock_line});
  CHECK(next_timer_ms(h.loop) == 30'000);
  h.advance(29'999ms);
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::waiting);
  h.advance(1ms);
  CHECK(h.take_calls() == Calls{mount_line("/dev/sdb", "btrfs", 0, "device=/dev/sdb,degraded"), spawn_line});
  CHECK(h.state() == State::degraded);
  const Status& s = h.status();
  CHECK(s.degraded);
  CHECK(s.device == "/dev/sdb");
  CHECK(s.members_present == 1);
  CHECK(s.members_expected == 2);
  CHECK(s.mount_data == "device=/dev/sdb,degraded");
  CHECK(s.program_pid == h.platform.last_pid());

  // Restarted, still degraded.
  h.exit_program(3);
  CHECK(h.state() == State::mounted);
  h.advance(1s);
  CHECK(h.take_calls() == Calls{spawn_line});
  CHECK(h.state() == State::degraded);

  // The only member left goes: stop and unmount; Degraded clears.
  h.remove("sdb");
  h.kill_program(SIGTERM);
  CHECK(h.state() == State::waiting);
  CHECK_FALSE(h.status().degraded);
}

TEST_CASE("gate: --degraded-after: the member arriving in time gives a normal mount") {
  Config config = pool_config();
  config.degraded_after = std::chrono::seconds(30);
  Harness h(config);
  h.add(sdb(), member2());
  h.advance(29s);
  h.add(sdc(), member1());
  CHECK(h.take_calls() == Calls{lock_line, pool_mount, spawn_line});
  h.advance(1h);
  CHECK(h.take_calls().empty());
  CHECK(h.state() == State::running);
  CHECK_FALSE(h.status().degraded);
}

TEST_CASE("gate: --degraded-after: the member leaving before the timer mounts nothing") {
  Config config = pool_config();
  config.degraded_after = std::chrono::seconds(30);
  Harness h(config);
  h.add(sdb(), member2());
  h.advance(10s);
  h.remove("sdb");
  h.advance(1h);
  CHECK(h.take_calls() == Calls{lock_line});
  CHECK(h.state() == State::waiting);
}

TEST_CASE("gate: --degraded-after counts again from Start after a Stop") {
  Config config = pool_config();
  config.degraded_after = std::chrono::seconds(30);
  Harness h(config);
  h.add(sdb(), member2());
  h.advance(20s);
  h.stop();
  h.advance(5s);
  h.start();
  h.advance(29s);  // 54 s after the member came, 29 s after Start
  CHECK(h.take_calls() == Calls{lock_line});
  CHECK(h.state() == State::waiting);
  h.advance(1s);
  CHECK(h.take_calls() == Calls{mount_line("/dev/sdb", "btrfs", 0, "device=/dev/sdb,degraded"), spawn_line});
  CHECK(h.state() == State::degraded);
}

TEST_CASE("gate: without --degraded-after an incomplete btrfs is never mounted") {
  Harness h(pool_config());
  h.add(sdb(), member2());
  h.advance(24h);
  CHECK(h.take_calls() == Calls{lock_line});
  CHECK(h.state() == State::waiting);
  CHECK(h.loop.pending_timers() == 0);
}

// ---- Ambiguous sources ----

TEST_CASE("gate: two ext4 devices with one UUID: waiting with LastError, no mount") {
  Harness h(config_for("UUID=" + ext_uuid));
  add(h.map, sdb(), filesystem("ext4", ext_uuid));
  add(h.map, sdc(), filesystem("ext4", ext_uuid));
  h.update();
  CHECK(h.take_calls() == Calls{lock_line});
  CHECK(h.state() == State::waiting);
  CHECK(contains(h.status().last_error, "/dev/sdb"));
  CHECK(contains(h.status().last_error, "/dev/sdc"));

  h.remove("sdc");
  CHECK(h.take_calls() == Calls{mount_line("/dev/sdb", "ext4", 0, ""), spawn_line});
  CHECK(h.status().last_error.empty());
}

TEST_CASE("gate: a dd-copied btrfs member: waiting with LastError, no mount, even when degraded is allowed") {
  Config config = pool_config();
  config.degraded_after = std::chrono::seconds(30);
  Harness h(config);
  h.add(sdb(), member2());
  h.add(kdev("sdd", 8, 48), member2());  // a copy of sdb
  h.add(sdc(), member1());
  CHECK(h.state() == State::waiting);
  CHECK(contains(h.status().last_error, "/dev/sdd"));
  h.advance(1h);
  CHECK(h.take_calls() == Calls{lock_line});

  h.remove("sdd");
  CHECK(h.take_calls() == Calls{pool_mount, spawn_line});
  CHECK(h.state() == State::running);
}

// ---- Status ----

TEST_CASE("gate: the status listener sees every state, with the fields of each") {
  // Harness checks after every step that the listener's last status equals
  // status(); here the sequence itself.
  Harness h(pool_config());
  bring_up(h);
  h.exit_program(3);
  h.advance(1s);
  h.remove("sdb");
  h.kill_program(SIGTERM);
  CHECK(h.seen_states() == States{State::waiting, State::mounting, State::mounted, State::running, State::mounted,
                                  State::running, State::stopping, State::waiting});
  for (const Status& s : h.statuses) {
    INFO(describe(s));
    if (s.state == State::running) {
      CHECK(s.program_pid >= FakePlatform::first_pid);
      CHECK(s.mount_data == pool_data);
      CHECK(s.device == "/dev/sdc");
      CHECK(s.members_present == 2);
    }
    if (s.state == State::waiting || s.state == State::mounted) CHECK(s.program_pid == 0);
  }
  CHECK(h.status().members_present == 1);
  CHECK(h.status().members_expected == 2);
  CHECK(h.status().restarts == 1);
}

TEST_CASE("gate: destroying the gate cancels its timers and watches") {
  Harness h(pool_config());
  bring_up(h);
  h.exit_program(3);
  h.advance(1s);
  h.remove("sdb");  // a kill timer and a watch
  REQUIRE(h.loop.pending_timers() == 1);
  REQUIRE(h.loop.watch_count() == 1);
  h.gate.reset();
  CHECK(h.loop.pending_timers() == 0);
  CHECK(h.loop.watch_count() == 0);
}

// ---- Faults: a gate that unwinds, a program that cannot be killed ----

TEST_CASE("gate: destroyed while the program runs (the daemon unwinding): SIGKILL to the group, then detach") {
  Harness h(pool_config());
  bring_up(h);
  pid_t pid = h.status().program_pid;
  h.gate.reset();
  CHECK(h.take_calls() == Calls{signal_line(pid, "SIGKILL"), lazy_unmount_line});
  CHECK(h.platform.table.empty());
}

TEST_CASE("gate: a program that survives SIGKILL: the target is detached, failed, and nothing else starts until it is reaped") {
  // Uninterruptible sleep on a dead USB disk cannot be produced here for
  // real; the fake's child simply never ends until the test says so.
  Config config = pool_config();
  config.stop_timeout = std::chrono::milliseconds(5'000);
  Harness h(config);
  bring_up(h);
  pid_t pid = h.status().program_pid;
  h.remove("sdb");
  h.advance(5s);
  CHECK(h.take_calls() == Calls{signal_line(pid, "SIGTERM"), signal_line(pid, "SIGKILL")});
  CHECK(h.state() == State::stopping);
  h.advance(4999ms);
  CHECK(h.take_calls().empty());
  h.advance(1ms);
  CHECK(h.take_calls() == Calls{lazy_unmount_line});
  CHECK(h.platform.table.empty());
  CHECK(h.state() == State::failed);
  CHECK(contains(h.status().last_error, "survived SIGKILL"));
  CHECK(contains(h.status().last_error, target));
  CHECK(h.status().program_pid == pid);  // still there, still watched

  // The member comes back and retries fall due: no mount, no second program.
  h.add(sdb(), member2());
  h.advance(10min);
  for (const std::string& call : h.take_calls()) CHECK_FALSE(call.starts_with("mount"));
  CHECK(h.platform.spawn_count() == 1);

  // The kernel lets it go at last: mounted and started again.
  h.kill_program(SIGKILL);
  h.advance(1min);
  CHECK(h.take_calls() == Calls{lock_line, pool_mount, spawn_line});
  CHECK(h.state() == State::running);
}

TEST_CASE("gate: shutdown with a program that survives SIGKILL still ends, the target detached") {
  Config config = pool_config();
  config.stop_timeout = std::chrono::milliseconds(2'000);
  Harness h(config);
  bring_up(h);
  pid_t pid = h.status().program_pid;
  h.shutdown();
  h.advance(4s);
  CHECK(h.take_calls() == Calls{signal_line(pid, "SIGTERM"), signal_line(pid, "SIGKILL"), lazy_unmount_line, "done"});
  CHECK(h.done == 1);
  CHECK(h.state() == State::stopped);
  // Reaped after all: nothing more happens, done is not called twice.
  h.kill_program(SIGKILL);
  CHECK(h.done == 1);
  CHECK(h.take_calls().empty());
}

// ---- Only the right disk ----

TEST_CASE("gate: each member's superblock is read again before mounting; a swapped disk is never mounted") {
  Harness h(pool_config());
  SECTION("a member whose UUID_SUB changed behind the map's back") {
    h.platform.disk_overrides["/dev/sdb"] = {{"UUID", fsid}, {"UUID_SUB", "b0000000-0000-4000-8000-00000000ffff"},
                                             {"TYPE", "btrfs"}};
  }
  SECTION("a member that holds another filesystem now") {
    h.platform.disk_overrides["/dev/sdb"] = {{"UUID", ext_uuid}, {"TYPE", "ext4"}};
  }
  SECTION("a member with every UUID right but another label (another filesystem given them)") {
    h.platform.disk_overrides["/dev/sdb"] = {{"LABEL", "impostor"}, {"UUID", fsid}, {"UUID_SUB", sub2},
                                             {"TYPE", "btrfs"}};
  }
  SECTION("a member that cannot be read") {
    h.platform.disk_overrides["/dev/sdb"] = {};
  }
  h.add(sdb(), member2());
  h.add(sdc(), member1());
  CHECK(h.platform.mount_count() == 0);
  CHECK(h.platform.spawn_count() == 0);
  CHECK(h.state() == State::failed);
  INFO(h.status().last_error);
  CHECK(contains(h.status().last_error, "/dev/sdb"));
  CHECK(contains(h.status().last_error, "refusing to mount"));

  // The right disk back: the retry mounts it.
  h.platform.disk_overrides.clear();
  h.advance(1s);
  CHECK(h.state() == State::running);
}

TEST_CASE("gate: btrfs members that disagree on the label are not mounted, even degraded") {
  Config config = pool_config();
  config.degraded_after = std::chrono::seconds(5);
  Harness h(config);
  h.add(sdb(), btrfs(fsid, sub2, 2, 2, 10, "impostor"));
  h.add(sdc(), member1());
  h.advance(1min);
  CHECK(h.platform.mount_count() == 0);
  CHECK(h.state() == State::waiting);
  INFO(h.status().last_error);
  CHECK(contains(h.status().last_error, "disagree on the label"));
  CHECK(contains(h.status().last_error, "/dev/sdb"));
}

TEST_CASE("gate: what the kernel mounted is checked; anything else is unmounted at once") {
  Harness h(pool_config());
  os::MountedFilesystem wrong;
  SECTION("another fsid") {
    wrong.uuid = other_fsid;
    wrong.members = {{1, sub1, "/dev/sdc"}, {2, sub2, "/dev/sdb"}};
  }
  SECTION("the right fsid with a member that is not ours") {
    wrong.uuid = fsid;
    wrong.members = {{1, sub1, "/dev/sdc"}, {2, "c0000000-0000-4000-8000-000000000009", "/dev/sdx"}};
  }
  h.platform.kernel_view = wrong;
  h.add(sdb(), member2());
  h.add(sdc(), member1());
  CHECK(h.take_calls() == Calls{lock_line, pool_mount, lazy_unmount_line});
  CHECK(h.platform.table.empty());
  CHECK(h.platform.spawn_count() == 0);
  CHECK(h.state() == State::failed);
  INFO(h.status().last_error);
  CHECK(contains(h.status().last_error, fsid));
}

TEST_CASE("gate: an ext4 whose mounted UUID differs is unmounted; the device number counts where the kernel has no UUID") {
  SECTION("ext4, UUID from the kernel") {
    Harness h(config_for("UUID=" + ext_uuid));
    os::MountedFilesystem wrong;
    wrong.uuid = "11111111-0000-4000-8000-000000000000";
    h.platform.kernel_view = wrong;
    h.add(sdb(), filesystem("ext4", ext_uuid));
    CHECK(h.state() == State::failed);
    CHECK(contains(h.status().last_error, "11111111-0000-4000-8000-000000000000"));
    CHECK(h.platform.table.empty());
  }
  SECTION("vfat: no UUID from the kernel, st_dev compared") {
    const std::string vfat_uuid = "1234-ABCD";
    Harness h(config_for("UUID=" + vfat_uuid));
    os::MountedFilesystem view;
    view.major = 8;
    view.minor = 17;  // not sdb's 8:16
    h.platform.kernel_view = view;
    h.add(sdb(), filesystem("vfat", vfat_uuid));
    CHECK(h.state() == State::failed);
    CHECK(contains(h.status().last_error, "8:17"));
    view.minor = 16;
    h.platform.kernel_view = view;
    h.advance(1s);
    CHECK(h.state() == State::running);
  }
}

TEST_CASE("gate: a mount found at start is adopted only when the kernel confirms it") {
  Harness h(pool_config());
  h.platform.table = {entry("/dev/sdb", "btrfs")};
  os::MountedFilesystem wrong;
  wrong.uuid = fsid;
  wrong.members = {{1, sub1, "/dev/sdc"}};  // sdb's UUID_SUB missing
  h.platform.kernel_view = wrong;
  add(h.map, sdb(), member2());
  add(h.map, sdc(), member1());
  h.update();
  CHECK(h.platform.spawn_count() == 0);
  CHECK(h.state() == State::failed);
  CHECK(contains(h.status().last_error, "not adopting"));
  CHECK(h.take_calls().empty());  // someone else's: not unmounted by us
}

TEST_CASE("gate: a kernel without the filesystem type: said plainly, and no retries until Start") {
  Harness h(pool_config());
  h.platform.unsupported_types = {"btrfs"};
  h.add(sdb(), member2());
  h.add(sdc(), member1());
  CHECK(h.state() == State::failed);
  INFO(h.status().last_error);
  CHECK(contains(h.status().last_error, "does not support btrfs (/proc/filesystems does not list it)"));
  CHECK(h.platform.mount_count() == 1);
  // No retry loop: neither time nor map changes try again.
  h.add(kdev("sdd", 8, 48), unidentified());
  h.advance(1h);
  CHECK(h.platform.mount_count() == 1);
  // The kernel got it (a module loaded by hand): Start tries again.
  h.platform.unsupported_types.clear();
  h.start();
  CHECK(h.state() == State::running);
}

TEST_CASE("gate: ENODEV for a type the kernel lists is an ordinary failure, retried") {
  Harness h(pool_config());
  h.platform.mount_errors = {ENODEV};
  h.add(sdb(), member2());
  h.add(sdc(), member1());
  CHECK(h.state() == State::failed);
  CHECK_FALSE(contains(h.status().last_error, "does not support"));
  h.advance(1s);
  CHECK(h.state() == State::running);
}

// ---- The program as another user ----

TEST_CASE("gate: --user: the program runs with those credentials and the filesystem root is theirs") {
  SECTION("btrfs: chown of the root after mounting") {
    Config config = pool_config();
    config.credentials = os::Credentials{65534, 65534};
    Harness h(config);
    h.add(sdb(), member2());
    h.add(sdc(), member1());
    CHECK(h.take_calls() == Calls{lock_line, pool_mount, "chown " + target + " 65534:65534", spawn_line});
    REQUIRE(h.platform.spawn_credentials.size() == 1);
    CHECK(h.platform.spawn_credentials[0] == os::Credentials{65534, 65534});
  }
  SECTION("vfat: owner given as mount options, no chown") {
    Config config = config_for("UUID=1234-ABCD");
    config.credentials = os::Credentials{1000, 100};
    Harness h(config);
    h.add(sdb(), filesystem("vfat", "1234-ABCD"));
    CHECK(h.take_calls() == Calls{lock_line, mount_line("/dev/sdb", "vfat", 0, "uid=1000,gid=100"), spawn_line});
  }
  SECTION("without --user: as diskgated") {
    Harness h(pool_config());
    bring_up(h);
    REQUIRE(h.platform.spawn_credentials.size() == 1);
    CHECK_FALSE(h.platform.spawn_credentials[0]);
  }
}

// ---- One program or none: the record of the running program ----

TEST_CASE("gate: the running program is recorded, and the record removed when it ends") {
  Harness h(pool_config());
  bring_up(h);
  pid_t pid = h.status().program_pid;
  CHECK(h.platform.files[record_path] ==
        fmt::format("pid={}\nstart_time={}\n", pid, FakePlatform::start_time_of(pid)));
  h.exit_program(0);
  CHECK_FALSE(h.platform.files.contains(record_path));
}

TEST_CASE("gate: a program left by an earlier diskgated is stopped before anything starts") {
  Config config = pool_config();
  config.stop_timeout = std::chrono::milliseconds(3'000);
  Harness h(config);
  const pid_t old_pid = 777;
  h.platform.files[record_path] = "pid=777\nstart_time=4242\n";
  // Its leader died with the old daemon (PDEATHSIG); a child of it lives on.
  h.platform.groups[old_pid] = {{778, 4300}};
  h.platform.table = {entry("/dev/sdb", "btrfs")};
  add(h.map, sdb(), member2());
  add(h.map, sdc(), member1());
  h.update();
  CHECK(h.take_calls() == Calls{signal_line(old_pid, "SIGTERM")});
  CHECK(h.platform.spawn_count() == 0);
  SECTION("it stops on SIGTERM") {
    h.advance(500ms);
    h.platform.groups.clear();
    h.advance(100ms);
    CHECK(h.take_calls() == Calls{spawn_line});  // adopted, one program
    CHECK(h.state() == State::running);
  }
  SECTION("it needs SIGKILL") {
    h.advance(3s);
    CHECK(h.take_calls() == Calls{signal_line(old_pid, "SIGKILL")});
    h.platform.groups.clear();
    h.advance(100ms);
    CHECK(h.take_calls() == Calls{spawn_line});
    CHECK(h.state() == State::running);
  }
  SECTION("it survives SIGKILL: failed, no second program, tried again later") {
    h.advance(6s);
    CHECK(h.take_calls() == Calls{signal_line(old_pid, "SIGKILL")});
    CHECK(h.state() == State::failed);
    CHECK(contains(h.status().last_error, "survived SIGKILL"));
    CHECK(h.platform.spawn_count() == 0);
    h.platform.groups.clear();
    h.advance(2s);
    CHECK(h.take_calls() == Calls{spawn_line});
    CHECK(h.state() == State::running);
  }
  CHECK(h.platform.spawn_count() == 1);
}

TEST_CASE("gate: a record whose pid now belongs to someone else is not acted on") {
  Harness h(pool_config());
  SECTION("the pid is another process's group leader now") {
    h.platform.files[record_path] = "pid=777\nstart_time=4242\n";
    h.platform.groups[777] = {{777, 9999}, {780, 9999}};
  }
  SECTION("a damaged record") {
    h.platform.files[record_path] = "pid=777\nstart_time=\n";
  }
  bring_up(h);  // no signal in the calls
  // A new record for the program we started replaced it.
  CHECK(contains(h.platform.files[record_path], fmt::format("pid={}", h.status().program_pid)));
}

}  // namespace
}  // namespace diskgate::gate
