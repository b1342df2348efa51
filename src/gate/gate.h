// The gate: mounts the source once every member is present, runs the
// program on it under supervision, and stops the program and unmounts
// before (or as soon as) a member goes away. An explicit state machine;
// every effect goes through the Platform and Loop seams.
//
//   waiting ──ready──▶ mounting ──▶ mounted ──spawn──▶ running
//      ▲                  │ error       ▲ backoff        │ exit: restart
//      │                  ▼             └────────────────┤
//      │               failed                             │ member gone / Stop
//      └──────── unmounted ◀──── stopping ◀───────────────┘
//   degraded: running on a btrfs mounted with members missing
//   stopped:  held by Stop() until Start()
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
#include "gate/source_state.h"
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
  // Sends `signal` to the program's process group; a failure is LastError.
  void signal_program(int signal);
  void mount(const SourceState& source, bool degraded);
  void start_program();
  void on_child_exit();
  void schedule_restart();
  // The program ended for good: unmount and tell the daemon.
  void finish(int code);
  // Stops the program (TERM, then KILL after stop_timeout), then runs `next`.
  void stop_program(std::function<void()> next);
  void unmount();
  bool members_still_there() const;
  void arm_degraded_timer(const SourceState& source);
  void disarm_degraded_timer();
  void set_state(State state);
  void set_error(std::string error);
  void publish();
  std::uint64_t now_usec() const;

  Config config_;
  os::Platform& platform_;
  Loop& loop_;
  const devices::DeviceMap* map_ = nullptr;
  Status status_;
  std::optional<Status> published_;  // what the listener saw last
  std::function<void(const Status&)> listener_;
  std::function<void(int)> finished_;

  std::optional<os::Platform::Child> child_;
  bool stop_requested_ = false;             // the child's exit is ours
  std::function<void()> after_child_exit_;  // continuation of stop_program
  std::optional<Loop::TimerId> kill_timer_, restart_timer_, degraded_timer_;
  Loop::Clock::duration backoff_ = std::chrono::seconds(1);
  Loop::Clock::time_point started_at_{};
  bool mounted_ = false;                      // we mounted (or adopted) the target
  bool locked_ = false;                       // the bare target is locked
  std::string waiting_for_;                   // last reason logged for waiting
  std::vector<std::string> mounted_members_;  // nodes we mounted (or adopted) with
  std::string mounted_uuid_;
  bool shutting_down_ = false;
  bool evaluating_ = false;
  bool reevaluate_ = false;
};

}  // namespace diskgate::gate
