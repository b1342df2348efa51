#include "gate/gate.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/log.h"

namespace diskgate::gate {

namespace {
constexpr auto max_backoff = std::chrono::seconds(60);
constexpr auto healthy_run = std::chrono::seconds(60);

std::string describe(const os::ExitStatus& status) {
  return status.signalled ? fmt::format("killed by signal {}", status.code)
                          : fmt::format("exited with status {}", status.code);
}

}  // namespace

std::string_view to_string(State state) {
  switch (state) {
    case State::waiting: return "waiting";
    case State::mounting: return "mounting";
    case State::mounted: return "mounted";
    case State::running: return "running";
    case State::stopping: return "stopping";
    case State::degraded: return "degraded";
    case State::failed: return "failed";
    case State::stopped: return "stopped";
  }
  return "unknown";
}

Gate::Gate(Config config, os::Platform& platform, Loop& loop)
    : config_(std::move(config)), platform_(platform), loop_(loop) {}

Gate::~Gate() {
  for (auto* timer : {&kill_timer_, &restart_timer_, &degraded_timer_})
    if (*timer) loop_.cancel(**timer);
  if (child_) loop_.unwatch(child_->pidfd);
}

void Gate::update(const devices::DeviceMap& map) {
  map_ = &map;
  evaluate();
}

void Gate::evaluate() {
  if (!map_ || shutting_down_) return;
  // A step may ask for another look (a stop that finished at once); do it
  // after this one, a bounded number of times, rather than recursing.
  if (evaluating_) {
    reevaluate_ = true;
    return;
  }
  evaluating_ = true;
  for (int round = 0; round < 4; ++round) {
    reevaluate_ = false;
    evaluate_once();
    if (!reevaluate_ || shutting_down_) break;
  }
  evaluating_ = false;
}

void Gate::evaluate_once() {
  switch (status_.state) {
    case State::stopped:
    case State::stopping:
    case State::mounting:
      return;
    case State::mounted:
    case State::running:
    case State::degraded:
      if (!members_still_there()) {
        log(Level::warning, "gate: a member of {} went away: stopping the program and unmounting {}",
            config_.source_text, config_.target);
        stop_program([this] {
          unmount();
          set_state(State::waiting);
          evaluate();
        });
        return;
      }
      if (SourceState source = evaluate_source(*map_, config_.source); source.kind != SourceState::Kind::absent) {
        if (source.present > status_.members_present && status_.degraded)
          log(Level::warning, "gate: a missing member of {} is back; it stays mounted degraded until restarted",
              source.fs_uuid);
        status_.members_present = source.present;
        status_.members_expected = source.expected;
        publish();
      }
      return;
    case State::waiting:
    case State::failed:
      break;
  }

  SourceState source = evaluate_source(*map_, config_.source);
  status_.members_present = source.present;
  status_.members_expected = source.expected;
  status_.fstype = source.fstype;
  status_.device = source.device;
  publish();

  std::vector<os::MountEntry> mounts;
  try {
    mounts = platform_.mounts_at(config_.target);
  } catch (const os::OsError& e) {
    set_error(e.what());
    set_state(State::failed);
    return;
  }
  if (!mounts.empty()) {
    const os::MountEntry& top = mounts.back();
    const devices::Device* there = map_->find_node(top.source);
    std::string there_uuid = there ? probe::tag_value(there->identity.tags, "UUID") : "";
    // Ours: the mounted device carries the filesystem the source names. Wait
    // for the rest of its members before adopting it.
    bool ours = !there_uuid.empty() && devices::fold_uuid(there_uuid) == devices::fold_uuid(source.fs_uuid);
    if (ours && source.kind != SourceState::Kind::ready) {
      set_state(State::waiting);
      return;
    }
    if (ours) {
      log(Level::notice, "gate: adopting {} already mounted on {}", top.source, config_.target);
      mounted_ = true;
      mounted_members_ = source.members;
      mounted_uuid_ = source.fs_uuid;
      status_.mount_data = top.super_options;
      status_.degraded = false;
      status_.last_error.clear();
      set_state(State::mounted);
      start_program();
      return;
    }
    if (there && there->identity.state == devices::Identity::State::unprobed) return;  // decide once probed
    if (source.kind == SourceState::Kind::unprobed) return;
    std::string what = there_uuid.empty() ? fmt::format("{} ({})", top.source, top.fstype)
                                          : fmt::format("{} ({}, UUID={})", top.source, top.fstype, there_uuid);
    set_error(fmt::format("{} already has {} mounted, which is not {}; refusing to mount over it", config_.target,
                          what, config_.source_text));
    set_state(State::failed);
    return;
  }
  if (!locked_) {
    try {
      std::string note = platform_.lock_directory(config_.target);
      if (!note.empty()) log(Level::notice, "gate: {}: {}", config_.target, note);
    } catch (const os::OsError& e) {
      // Never mount or run anything on a target we could not secure.
      set_error(e.what());
      set_state(State::failed);
      return;
    }
    locked_ = true;
  }

  switch (source.kind) {
    case SourceState::Kind::ready:
      disarm_degraded_timer();
      if (!config_.fstype.empty() && config_.fstype != source.fstype) {
        set_error(fmt::format("--fstype {} disagrees with the probe: {} on {} is {}", config_.fstype,
                              config_.source_text, source.device, source.fstype));
        set_state(State::failed);
        return;
      }
      mount(source, false);
      return;
    case SourceState::Kind::incomplete:
      arm_degraded_timer(source);
      break;
    case SourceState::Kind::ambiguous:
      disarm_degraded_timer();
      set_error(source.detail);
      break;
    case SourceState::Kind::absent:
    case SourceState::Kind::unprobed:
      disarm_degraded_timer();
      break;
  }
  if (waiting_for_ != source.detail) {
    waiting_for_ = source.detail;
    if (!source.detail.empty()) log(Level::info, "gate: waiting: {}", source.detail);
  }
  set_state(State::waiting);
  publish();
}

void Gate::mount(const SourceState& source, bool degraded) {
  set_state(State::mounting);
  std::string data = join_data({source.fstype == "btrfs" ? source.member_data : "", degraded ? "degraded" : "",
                                config_.options.data, config_.data});
  status_.mount_data = data;
  try {
    status_.mount_called_usec = now_usec();
    platform_.mount(source.device, config_.target, source.fstype, config_.options.flags, data);
    status_.mounted_at_usec = now_usec();
  } catch (const os::OsError& e) {
    set_error(e.what());
    set_state(State::failed);
    return;
  }
  locked_ = false;
  // A mount that does not show in the mount table (a racing unmount, a
  // namespace mix-up) must not be retried in a loop: fail and say so.
  bool visible = false;
  try {
    visible = !platform_.mounts_at(config_.target).empty();
  } catch (const os::OsError& e) {
    set_error(e.what());
  }
  if (!visible) {
    set_error(fmt::format("{} is not mounted after mount(2) returned; not starting {}", config_.target,
                          config_.argv.front()));
    set_state(State::failed);
    return;
  }
  mounted_ = true;
  mounted_members_ = source.members;
  mounted_uuid_ = source.fs_uuid;
  status_.degraded = degraded;
  status_.last_error.clear();
  waiting_for_.clear();
  if (degraded)
    log(Level::error,
        "gate: MOUNTED DEGRADED: btrfs {} with {} of {} members on {} (missing devid {}); replace or re-add the "
        "missing disk, then scrub",
        source.fs_uuid, source.present, source.expected, config_.target, fmt::join(source.missing_devids, ", "));
  else
    log(Level::notice, "gate: mounted {} on {} ({}{}{})", source.device, config_.target, source.fstype,
        data.empty() ? "" : ", ", data);
  set_state(State::mounted);
  start_program();
}

void Gate::start_program() {
  if (status_.state != State::mounted || child_) return;
  // Never run the program on the bare directory: check the mount is there.
  std::vector<os::MountEntry> mounts;
  try {
    mounts = platform_.mounts_at(config_.target);
  } catch (const os::OsError& e) {
    set_error(e.what());
  }
  if (mounts.empty()) {
    set_error(fmt::format("{} is not mounted any more; not starting {}", config_.target, config_.argv.front()));
    mounted_ = false;
    set_state(State::waiting);
    evaluate();
    return;
  }
  try {
    child_ = platform_.spawn(config_.argv, std::nullopt);
  } catch (const os::OsError& e) {
    set_error(e.what());
    status_.last_exit_status = "could not be started";
    ++status_.restarts;
    if (config_.restart == RestartPolicy::no) {
      finish(127);
      return;
    }
    schedule_restart();
    publish();
    return;
  }
  started_at_ = loop_.now();
  status_.started_at_usec = now_usec();
  status_.program_pid = child_->pid;
  loop_.watch_readable(child_->pidfd, [this] { on_child_exit(); });
  log(Level::info, "gate: started {} (pid {})", config_.argv.front(), child_->pid);
  set_state(status_.degraded ? State::degraded : State::running);
}

void Gate::on_child_exit() {
  if (!child_) return;
  std::optional<os::ExitStatus> exit;
  try {
    exit = platform_.reap(*child_);
  } catch (const os::OsError& e) {
    // The child cannot be waited for (it is gone): treat it as ended.
    set_error(e.what());
    exit = os::ExitStatus{true, SIGKILL};
  }
  if (!exit) return;
  loop_.unwatch(child_->pidfd);
  pid_t pid = child_->pid;
  child_.reset();
  status_.program_pid = 0;
  status_.last_exit_status = describe(*exit);
  if (kill_timer_) {
    loop_.cancel(*kill_timer_);
    kill_timer_.reset();
  }
  if (stop_requested_) {
    stop_requested_ = false;
    log(Level::info, "gate: {} (pid {}) stopped: {}", config_.argv.front(), pid, status_.last_exit_status);
    auto next = std::move(after_child_exit_);
    after_child_exit_ = nullptr;
    next();
    return;
  }
  ++status_.restarts;
  log(Level::warning, "gate: {} (pid {}) {}", config_.argv.front(), pid, status_.last_exit_status);
  bool failed = exit->signalled || exit->code != 0;
  bool again = config_.restart == RestartPolicy::always || (config_.restart == RestartPolicy::on_failure && failed);
  if (!again) {
    finish(exit->signalled ? 128 + exit->code : exit->code);
    return;
  }
  set_state(State::mounted);
  if (loop_.now() - started_at_ >= healthy_run) backoff_ = std::chrono::seconds(1);
  schedule_restart();
}

void Gate::finish(int code) {
  log(Level::notice, "gate: not restarting {} (--restart {}); unmounting", config_.argv.front(),
      config_.restart == RestartPolicy::no ? "no" : "on-failure");
  unmount();
  set_state(State::stopped);
  if (finished_) finished_(code);
}

void Gate::schedule_restart() {
  auto delay = backoff_;
  backoff_ = std::min<Loop::Clock::duration>(backoff_ * 2, max_backoff);
  log(Level::info, "gate: restarting {} in {} ms", config_.argv.front(),
      std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  restart_timer_ = loop_.after(delay, [this] {
    restart_timer_.reset();
    start_program();
  });
}

void Gate::stop_program(std::function<void()> next) {
  if (restart_timer_) {
    loop_.cancel(*restart_timer_);
    restart_timer_.reset();
  }
  if (!child_) {
    next();
    return;
  }
  if (stop_requested_) {  // already stopping: keep its kill timer, change what follows
    after_child_exit_ = std::move(next);
    return;
  }
  set_state(State::stopping);
  stop_requested_ = true;
  after_child_exit_ = std::move(next);
  signal_program(SIGTERM);
  kill_timer_ = loop_.after(config_.stop_timeout, [this] {
    kill_timer_.reset();
    if (!child_) return;
    log(Level::warning, "gate: {} (pid {}) ignored SIGTERM for {} ms: sending SIGKILL", config_.argv.front(),
        child_->pid, config_.stop_timeout.count());
    signal_program(SIGKILL);
  });
}

void Gate::signal_program(int signal) {
  try {
    platform_.signal_group(child_->pid, signal);
  } catch (const os::OsError& e) {
    set_error(e.what());  // the kill timer still follows a failed SIGTERM
  }
}

void Gate::unmount() {
  if (!mounted_) return;
  try {
    platform_.unmount(config_.target, false);
  } catch (const os::OsError& e) {
    if (e.error_number == EBUSY) {
      // The program is gone; whatever still holds the mount cannot make us
      // write to the wrong disk once it is detached.
      log(Level::warning, "gate: {} is busy: detaching it lazily", config_.target);
      try {
        platform_.unmount(config_.target, true);
      } catch (const os::OsError& lazy) {
        set_error(lazy.what());
      }
    } else if (e.error_number != EINVAL) {  // EINVAL: not mounted any more
      set_error(e.what());
    }
  }
  log(Level::notice, "gate: unmounted {}", config_.target);
  mounted_ = false;
  mounted_members_.clear();
  mounted_uuid_.clear();
  status_.mount_data.clear();
  status_.degraded = false;
  try {
    std::string note = platform_.lock_directory(config_.target);
    locked_ = true;
    if (!note.empty()) log(Level::debug, "gate: {}: {}", config_.target, note);
  } catch (const os::OsError& e) {
    set_error(e.what());
  }
}

bool Gate::members_still_there() const {
  for (const std::string& node : mounted_members_) {
    const devices::Device* device = map_->find_node(node);
    if (!device || device->kernel.size_bytes == 0) return false;
    switch (device->identity.state) {
      case devices::Identity::State::unprobed:
        break;  // being probed again; not gone
      case devices::Identity::State::identified:
        if (!mounted_uuid_.empty() && devices::fold_uuid(probe::tag_value(device->identity.tags, "UUID")) != devices::fold_uuid(mounted_uuid_))
          return false;
        break;
      case devices::Identity::State::unidentified:
      case devices::Identity::State::unreadable:
        return false;
    }
  }
  return true;
}

void Gate::arm_degraded_timer(const SourceState& source) {
  if (!config_.degraded_after || degraded_timer_ || source.present == 0 || source.fstype != "btrfs") return;
  log(Level::notice, "gate: {}; mounting degraded in {} s unless the rest arrives", source.detail,
      std::chrono::duration_cast<std::chrono::seconds>(*config_.degraded_after).count());
  degraded_timer_ = loop_.after(*config_.degraded_after, [this] {
    degraded_timer_.reset();
    if (status_.state != State::waiting || !map_) return;
    SourceState now = evaluate_source(*map_, config_.source);
    if (now.kind != SourceState::Kind::incomplete || now.present == 0) {
      evaluate();
      return;
    }
    if (!config_.fstype.empty() && config_.fstype != now.fstype) {
      evaluate();
      return;
    }
    mount(now, true);
  });
}

void Gate::disarm_degraded_timer() {
  if (!degraded_timer_) return;
  loop_.cancel(*degraded_timer_);
  degraded_timer_.reset();
}

void Gate::start() {
  if (status_.state != State::stopped && status_.state != State::failed) return;
  log(Level::info, "gate: start requested");
  status_.last_error.clear();
  set_state(State::waiting);
  evaluate();
}

void Gate::stop() {
  if (status_.state == State::stopped || shutting_down_) return;
  log(Level::info, "gate: stop requested");
  disarm_degraded_timer();
  stop_program([this] {
    unmount();
    set_state(State::stopped);
  });
}

void Gate::restart_program() {
  if (status_.state == State::stopping || status_.state == State::stopped || shutting_down_) return;
  if (child_) {
    stop_program([this] {
      set_state(State::mounted);
      backoff_ = std::chrono::seconds(1);
      evaluate();  // a member may have gone while the program stopped
      start_program();
    });
  } else if (status_.state == State::mounted) {
    if (restart_timer_) {
      loop_.cancel(*restart_timer_);
      restart_timer_.reset();
    }
    start_program();
  }
}

void Gate::reload_program() {
  if (!child_) return;
  log(Level::info, "gate: sending SIGHUP to {} (pid {})", config_.argv.front(), child_->pid);
  signal_program(SIGHUP);
}

void Gate::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  disarm_degraded_timer();
  stop_program([this, done = std::move(done)] {
    unmount();
    set_state(State::stopped);
    done();
  });
}

void Gate::set_state(State state) {
  if (status_.state == state) return;
  log(Level::debug, "gate: {} -> {}", to_string(status_.state), to_string(state));
  status_.state = state;
  publish();
}

void Gate::set_error(std::string error) {
  if (error == status_.last_error) return;
  log(Level::error, "gate: {}", error);
  status_.last_error = std::move(error);
  publish();
}

void Gate::publish() {
  if (published_ && status_ == *published_) return;
  published_ = status_;
  if (listener_) listener_(status_);
}

std::uint64_t Gate::now_usec() const {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(loop_.now().time_since_epoch()).count());
}

}  // namespace diskgate::gate
