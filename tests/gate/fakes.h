// Test doubles for the gate: a Platform that records what the gate asks of
// the system and keeps a pretend mount table, a Loop whose clock moves only
// when the test says so, and builders for synthetic device-map events.
// Deterministic: no sleeps, no real time, no real processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "devices/builders.h"
#include "devices/device_map.h"
#include "gate/gate.h"
#include "gate/loop.h"
#include "os/platform.h"

namespace diskgate::gate::fakes {

using namespace std::chrono_literals;

// ---- Loop ----

class ManualLoop final : public Loop {
 public:
  // The clock starts well after its epoch, as the real steady clock does
  // (it counts from boot): code that mistakes "never" for time zero shows.
  ManualLoop();

  TimerId after(Clock::duration delay, std::function<void()> callback) override;
  void cancel(TimerId id) override;
  Clock::time_point now() const override { return now_; }
  void watch_readable(int fd, std::function<void()> callback) override;
  void unwatch(int fd) override;

  // Moves the clock on by `delta`, running the timers that fall due in
  // deadline order (ties in the order they were set), the clock standing at
  // each one's deadline while it runs. Timers set by a callback run too when
  // they fall due within `delta`.
  void advance(Clock::duration delta);
  // Time until the next timer, if any.
  std::optional<Clock::duration> next_timer() const;
  std::size_t pending_timers() const { return timers_.size(); }
  bool watching(int fd) const { return watches_.contains(fd); }
  std::size_t watch_count() const { return watches_.size(); }
  // Runs the callback watching `fd` as if it became readable; false when
  // nothing watches it.
  bool fire(int fd);

 private:
  Clock::time_point now_;
  TimerId next_id_ = 1;
  std::map<std::pair<Clock::time_point, TimerId>, std::function<void()>> timers_;
  std::map<TimerId, Clock::time_point> deadlines_;
  std::map<int, std::function<void()>> watches_;
};

// ---- Platform ----

class FakePlatform final : public os::Platform {
 public:
  FakePlatform() = default;
  ~FakePlatform() override;
  FakePlatform(const FakePlatform&) = delete;
  FakePlatform& operator=(const FakePlatform&) = delete;

  // Every call in order, one line each:
  //   "mount SOURCE TARGET FSTYPE flags=0xN data=DATA"
  //   "unmount TARGET" / "unmount TARGET lazy"
  //   "lock TARGET"
  //   "spawn ARG0 ARG1 ..."
  //   "signal PGID SIGTERM|SIGKILL|SIGHUP|N"
  // Tests may append their own markers ("finished 0", "done") to see order.
  std::vector<std::string> calls;

  // The mount table. mount() pushes, unmount() pops the top entry at the
  // target (EINVAL when none, as umount2). Tests pre-fill it.
  std::vector<os::MountEntry> table;
  // When false, mount() succeeds but leaves no entry (someone unmounted
  // it behind our back straight away).
  bool mount_appears = true;

  // errno for the next calls of each kind, front first; 0 or an empty queue
  // means success.
  std::deque<int> mount_errors, unmount_errors, spawn_errors, lock_errors;
  std::string lock_note;  // what lock_directory returns

  // The disks, as read_tags() reads them: the map's identities (the
  // Harness points this at its map), unless `disk_overrides` says the bytes
  // on a node are something else now (a disk swapped behind the map's back).
  const devices::DeviceMap* disks = nullptr;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> disk_overrides;
  // What inspect_mount() reports instead of what was mounted.
  std::optional<os::MountedFilesystem> kernel_view;

  // Files of write_text/read_text/remove_file, by path.
  std::map<std::string, std::string> files;
  // Processes by group, as /proc would list them (for leftover programs);
  // spawned children are added while they run.
  std::map<pid_t, std::vector<os::ProcessInfo>> groups;
  // The credentials each spawn() was given.
  std::vector<std::optional<os::Credentials>> spawn_credentials;

  // spawn() records whether this target had a mount at that moment.
  std::string guarded_target;
  std::vector<bool> mounted_at_spawn;
  // lock_directory() on a mounted target (SystemPlatform refuses with EBUSY).
  int locks_while_mounted = 0;

  void mount(const std::string& source, const std::string& target, const std::string& fstype,
             unsigned long flags, const std::string& data) override;
  void unmount(const std::string& target, bool lazy) override;
  std::vector<os::MountEntry> mounts_at(const std::string& target) override;
  std::string lock_directory(const std::string& dir) override;
  os::MountedFilesystem inspect_mount(const std::string& target) override;
  std::vector<std::pair<std::string, std::string>> read_tags(const std::string& node) override;
  Child spawn(const std::vector<std::string>& argv, const std::optional<os::Credentials>& credentials) override;
  void signal_group(pid_t pgid, int signal) override;
  std::optional<os::ExitStatus> reap(const Child& child) override;
  std::vector<os::ProcessInfo> processes_in_group(pid_t pgid) override;
  std::optional<std::uint64_t> process_start_time(pid_t pid) override;
  std::optional<std::string> read_text(const std::string& path) override;
  void write_text(const std::string& path, const std::string& text) override;
  void remove_file(const std::string& path) override;
  void give_root_to(const std::string& target, const os::Credentials& credentials) override;
  bool kernel_supports(const std::string& fstype) override { return !unsupported_types.contains(fstype); }
  // Types the fake kernel has no driver for: mount() fails with ENODEV.
  std::set<std::string> unsupported_types;

  // The child `pid` ends with `status`: reap() returns it from now on and its
  // pidfd (a real eventfd) becomes readable. The test then fires the loop.
  void end(pid_t pid, os::ExitStatus status);
  int pidfd_of(pid_t pid) const;
  pid_t last_pid() const { return next_pid_ - 1; }
  int spawn_count() const { return next_pid_ - first_pid; }
  int open_pidfds() const;
  int mount_count() const;  // mount() calls, failed ones included

  static constexpr pid_t first_pid = 1000;
  // The start time the fake /proc gives a spawned child.
  static std::uint64_t start_time_of(pid_t pid) { return 5000 + static_cast<std::uint64_t>(pid); }

 private:
  struct FakeChild {
    int fd = -1;
    std::optional<os::ExitStatus> status;
    bool reaped = false;
  };
  std::map<pid_t, FakeChild> children_;
  pid_t next_pid_ = first_pid;
};

// ---- Device-map events ----

using devices::testing::btrfs;
using devices::testing::filesystem;
using devices::testing::GiB;
using devices::testing::in_partition;
using devices::testing::kdev;
using devices::testing::unidentified;

// Upserts and answers the probe, as the daemon's probe worker would.
void add(devices::DeviceMap& map, const devices::KernelDevice& device, const devices::Identity& identity);
// Answers the probe the map waits for on `name`.
void identify(devices::DeviceMap& map, const std::string& name, const devices::Identity& identity);

devices::Spec spec(std::string_view text);

// Every field, for comparing statuses with a readable difference.
std::string describe(const Status& status);

// ---- A gate wired to the fakes ----

const std::string target = "/srv/backup";
const std::string runtime_dir = "/run/diskgate";
const std::string record_path = "/run/diskgate/srv-backup.program";

Config config_for(const std::string& source_text);

class Harness {
 public:
  explicit Harness(Config config);
  ~Harness();

  devices::DeviceMap map;
  FakePlatform platform;
  ManualLoop loop;
  std::vector<Status> statuses;  // every status the listener was given
  std::vector<int> finished;     // on_finished codes
  int done = 0;                  // shutdown's done calls
  std::unique_ptr<Gate> gate;

  // Each map change followed by gate.update(map), as the daemon does.
  void update();
  void add(const devices::KernelDevice& device, const devices::Identity& identity);
  void upsert(const devices::KernelDevice& device, bool media_changed = false);
  void identify(const std::string& name, const devices::Identity& identity);
  void remove(const std::string& name);

  // The running program (the last one spawned) ends with `status`.
  void end_program(os::ExitStatus status);
  void exit_program(int code) { end_program({false, code}); }
  void kill_program(int signal) { end_program({true, signal}); }
  void advance(Loop::Clock::duration delta);

  // The D-Bus methods, and the daemon's exit.
  void start();
  void stop();
  void restart_program();
  void reload_program();
  void shutdown();

  // The calls since the last take.
  std::vector<std::string> take_calls();
  State state() const { return gate->status().state; }
  const Status& status() const { return gate->status(); }
  // The states the listener saw, consecutive repeats folded.
  std::vector<State> seen_states() const;
  std::uint64_t now_usec() const;

  // Checks that the listener's last status equals status(): nothing changed
  // unannounced. Called after every step above.
  void check_published() const;
};

}  // namespace diskgate::gate::fakes
