// The gate: mounts the source once every member is present, runs the
// program on it under supervision, and stops the program and unmounts
// before (or as soon as) a member goes away. An explicit state machine over
// two parts with their own tests: the MountPoint (lock, verify, mount,
// unmount) and the Supervisor (spawn, reap, backoff, kill escalation).
//
//   waiting ──ready──▶ mounting ──▶ mounted ──spawn──▶ running
//      ▲                  │ error       ▲ backoff        │ exit: restart
//      │                  ▼             └────────────────┤
//      │  backoff ◀──  failed                             │ member gone / Stop
//      └──────── unmounted ◀──── stopping ◀───────────────┘
//   degraded: running on a btrfs mounted with members missing
//   stopped:  held by Stop() until Start()
//   failed:   tried again after a backoff (1 s doubling to 60 s), or on Start();
//             not tried again when the kernel lacks the filesystem type
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "devices/device_map.h"
#include "gate/loop.h"
#include "gate/mount_options.h"
#include "gate/mount_point.h"
#include "gate/source_state.h"
#include "gate/supervisor.h"
#include "os/platform.h"

namespace diskgate::gate {

enum class RestartPolicy { always, on_failure, no };

struct Config {
  std::string source_text;  // as the user wrote it
  devices::Spec source;
  std::string target;
  std::string fstype;  // empty: use the probed type
  MountOptions options;
  std::string data;    // raw, appended to the options' data
  std::vector<std::string> argv;
  RestartPolicy restart = RestartPolicy::always;
  std::chrono::milliseconds stop_timeout{10'000};
  std::optional<std::chrono::milliseconds> degraded_after;
  std::optional<os::Credentials> credentials;  // --user; unset: as diskgated
  // Where the running program is recorded for a diskgated started again
  // after a crash; "" keeps no record.
  std::string runtime_dir;
};

enum class State { waiting, mounting, mounted, running, stopping, degraded, failed, stopped };
std::string_view to_string(State state);

// What the gate shows on D-Bus and in `diskgatectl status`.
struct Status {
  State state = State::waiting;
  std::string device;  // what is (or will be) mounted
  std::string fstype;
  std::uint64_t members_present = 0, members_expected = 0;
  std::string mount_data;
  pid_t program_pid = 0;
  std::uint32_t restarts = 0;
  std::string last_exit_status;  // "exited with status 3", "killed by signal 9"
  std::string last_error;
  bool degraded = false;
  // CLOCK_MONOTONIC microseconds (steady_clock) of the last mount(2) call,
  // of its return, and of the last program start; 0 when none yet.
  std::uint64_t mount_called_usec = 0;
  std::uint64_t mounted_at_usec = 0;
  std::uint64_t started_at_usec = 0;
  bool operator==(const Status&) const = default;
};

class Gate {
 public:
  Gate(Config config, os::Platform& platform, Loop& loop);
  ~Gate();
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  // Called after every change of the device map, and once at start.
  void update(const devices::DeviceMap& map);

  // D-Bus methods.
  void start();           // leave `stopped` (or retry after `failed`)
  void stop();            // stop the program, unmount, hold in `stopped`
  void restart_program(); // stop and start the program again, mount kept
  void reload_program();  // SIGHUP to the program's process group
  // Daemon exit: stop the program, unmount, then call `done`.
  void shutdown(std::function<void()> done);

  const Status& status() const { return status_; }
  const Config& config() const { return config_; }
  // Called whenever status() changed.
  void on_status(std::function<void(const Status&)> listener) { listener_ = std::move(listener); }
  // Called when the program ended and the restart policy says not to start
  // it again: the gate has unmounted and the daemon should exit with `code`.
  void on_finished(std::function<void(int code)> listener) { finished_ = std::move(listener); }

 private:
  void evaluate();
  void evaluate_once();
  // Leaves waiting/failed for mounted (or failed again).
  void mount(const SourceState& source, bool degraded);
  void adopt(const SourceState& source, const os::MountEntry& top);
  void start_program();
  void on_program_exit(const os::ExitStatus& exit);
  void on_program_unkillable();
  // The program ended for good: unmount and tell the daemon.
  void finish(int code);
  // Stops the program, then runs `next`; the state is stopping meanwhile.
  void stop_program(std::function<void()> next);
  void unmount();
  bool members_still_there() const;
  void arm_degraded_timer(const SourceState& source);
  void disarm_degraded_timer();
  // failed, with `error`; tried again after the backoff.
  void fail(std::string error);
  void cancel_retry();
  void set_state(State state);
  void set_error(std::string error);
  void publish();
  std::uint64_t now_usec() const;

  Config config_;
  Loop& loop_;
  // Declared before the supervisor: destroyed after it, so that a last-
  // resort kill of the program comes before a last-resort detach.
  MountPoint mount_point_;
  Supervisor supervisor_;
  const devices::DeviceMap* map_ = nullptr;
  Status status_;
  std::optional<Status> published_;  // what the listener saw last
  std::function<void(const Status&)> listener_;
  std::function<void(int)> finished_;
  std::function<void()> shutdown_done_;

  std::optional<Loop::TimerId> degraded_timer_, retry_timer_;
  Backoff retry_backoff_;                     // for failed
  bool reclaimed_ = false;                    // a program left by an earlier run is gone
  std::string unsupported_type_;              // the kernel lacks it: wait for Start
  std::string waiting_for_;                   // last reason logged for waiting
  bool shutting_down_ = false;
  bool evaluating_ = false;
  bool reevaluate_ = false;
};

}  // namespace diskgate::gate
