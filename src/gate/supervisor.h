// The program under supervision: spawn, reap, restart backoff, and a stop
// that always ends (SIGTERM, SIGKILL after the stop timeout, and after one
// more timeout "unkillable": the caller then detaches the filesystem). At
// most one program at a time: a program left by an earlier diskgated (its
// record under the runtime directory) is stopped before ours starts.
//
// Every effect goes through os::Platform and the Loop, so the unit tests
// drive it with fakes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gate/loop.h"
#include "os/platform.h"

namespace diskgate::gate {

// 1 s doubling to 60 s; back to 1 s after a success that lasted 60 s.
class Backoff {
 public:
  static constexpr Loop::Clock::duration first = std::chrono::seconds(1);
  static constexpr Loop::Clock::duration longest = std::chrono::seconds(60);
  // The delay to wait now; the next one is twice as long.
  Loop::Clock::duration next();
  void reset() { delay_ = first; }

 private:
  Loop::Clock::duration delay_ = first;
};

// The record of the running program, so that a diskgated started again
// after a crash finds it: "pid=N\nstart_time=T\n". Pure.
std::string format_program_record(const os::ProcessInfo& process);
// nullopt for anything but a well-formed record (the file may be damaged).
std::optional<os::ProcessInfo> parse_program_record(std::string_view text);
// "/srv/backup" → "/run/diskgate/srv-backup.program": one record per target,
// so that several gates on one machine keep theirs apart ('-' and '\' in
// the target are escaped as \x2d and \x5c, as systemd-escape does).
std::string program_record_path(const std::string& runtime_dir, const std::string& target);

class Supervisor {
 public:
  struct Settings {
    std::vector<std::string> argv;
    std::optional<os::Credentials> credentials;
    std::chrono::milliseconds stop_timeout{10'000};
    std::string record_path;  // "" keeps no record
  };

  Supervisor(Settings settings, os::Platform& platform, Loop& loop);
  // Last resort (an exception unwinding the daemon): SIGKILL to the
  // program's group. Never throws.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Called when the program exits on its own (not through stop()).
  void on_exit(std::function<void(const os::ExitStatus&)> listener) { exited_ = std::move(listener); }
  // Called when a signal could not be sent or a record not written.
  void on_error(std::function<void(const std::string&)> listener) { error_ = std::move(listener); }
  // Called when the program survived SIGKILL for another stop timeout (a
  // process stuck in uninterruptible sleep on a dead disk). The stop's
  // continuation still runs once it is finally reaped.
  void on_unkillable(std::function<void()> listener) { unkillable_ = std::move(listener); }

  // Stops a program left by an earlier diskgated (found through the record
  // and checked against /proc: same pid and start time, or its process
  // group), then calls done(true); done(false) when it would not die.
  void reclaim(std::function<void(bool stopped)> done);
  bool reclaiming() const { return reclaim_done_ != nullptr; }

  // Starts the program; throws os::OsError when it cannot be started.
  void start();
  // A program runs (or has not been reaped yet).
  bool running() const { return child_.has_value(); }
  pid_t pid() const { return child_ ? child_->pid : 0; }
  // The program is being stopped by stop().
  bool stopping() const { return stop_requested_; }
  // How the last program ended.
  const std::optional<os::ExitStatus>& last_exit() const { return last_exit_; }
  // Stops the program (SIGTERM, then SIGKILL), then calls `next`; at once
  // when none runs. A second call while stopping replaces `next`.
  void stop(std::function<void()> next);
  void signal(int signal);

  // Restart after the backoff; the delay starts at 1 s again once the
  // program had run for 60 s.
  void restart_later(std::function<void()> start);
  void cancel_restart();
  bool restart_pending() const { return restart_timer_.has_value(); }
  void reset_backoff() { backoff_.reset(); }

 private:
  void on_child_readable();
  void arm_kill_timer();
  void cancel_timer(std::optional<Loop::TimerId>& timer);
  void report(const std::string& error);
  void write_record();
  void remove_record();
  // The leftover group's live members (the leader alone, as a precaution,
  // when /proc cannot be read).
  std::vector<os::ProcessInfo> leftovers();
  // Signals the leftover group, then watches it go.
  void signal_leftover(int signal);
  void reclaim_step(int signal_sent, Loop::Clock::time_point since);
  void finish_reclaim(bool stopped);

  Settings settings_;
  os::Platform& platform_;
  Loop& loop_;
  std::function<void(const os::ExitStatus&)> exited_;
  std::function<void(const std::string&)> error_;
  std::function<void()> unkillable_;

  std::optional<os::Platform::Child> child_;
  std::optional<os::ExitStatus> last_exit_;
  Loop::Clock::time_point started_at_{};
  bool stop_requested_ = false;
  std::function<void()> after_stop_;
  std::optional<Loop::TimerId> kill_timer_, restart_timer_, reclaim_timer_;
  Backoff backoff_;

  std::optional<os::ProcessInfo> leftover_;  // the recorded program being reclaimed
  std::function<void(bool)> reclaim_done_;
};

}  // namespace diskgate::gate
