#include "gate/gate.h"

#include <signal.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/log.h"

namespace diskgate::gate {

namespace {
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
    : config_(std::move(config)),
      loop_(loop),
      mount_point_(config_.target, platform, config_.credentials),
      supervisor_({config_.argv, config_.credentials, config_.stop_timeout,
                   config_.runtime_dir.empty() ? "" : program_record_path(config_.runtime_dir, config_.target)},
                  platform, loop) {
  supervisor_.on_exit([this](const os::ExitStatus& exit) { on_program_exit(exit); });
  supervisor_.on_unkillable([this] { on_program_unkillable(); });
  supervisor_.on_error([this](const std::string& error) { set_error(error); });
}

Gate::~Gate() {
  for (auto* timer : {&degraded_timer_, &retry_timer_})
    if (*timer) loop_.cancel(**timer);
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
  // Failed waits for its retry; a program that survived SIGKILL (or one
  // left by an earlier diskgated) must be gone before anything is mounted.
  if (retry_timer_ || supervisor_.reclaiming() || supervisor_.running()) return;
  if (!unsupported_type_.empty() && source.fstype == unsupported_type_) return;
  if (!reclaimed_) {
    supervisor_.reclaim([this](bool stopped) {
      if (!stopped) {
        fail(status_.last_error);
        return;
      }
      reclaimed_ = true;
      evaluate();
    });
    if (!reclaimed_) return;  // stopping the leftover program first
  }

  std::vector<os::MountEntry> mounts;
  try {
    mounts = mount_point_.mounts();
  } catch (const os::OsError& e) {
    fail(e.what());
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
      adopt(source, top);
      return;
    }
    if (there && there->identity.state == devices::Identity::State::unprobed) return;  // decide once probed
    if (source.kind == SourceState::Kind::unprobed) return;
    std::string what = there_uuid.empty() ? fmt::format("{} ({})", top.source, top.fstype)
                                          : fmt::format("{} ({}, UUID={})", top.source, top.fstype, there_uuid);
    fail(fmt::format("{} already has {} mounted, which is not {}; refusing to mount over it", config_.target, what,
                     config_.source_text));
    return;
  }
  if (!mount_point_.locked()) {
    try {
      std::string note = mount_point_.lock();
      if (!note.empty()) log(Level::notice, "gate: {}: {}", config_.target, note);
    } catch (const os::OsError& e) {
      // Never mount or run anything on a target we could not secure.
      fail(e.what());
      return;
    }
  }

  switch (source.kind) {
    case SourceState::Kind::ready:
      disarm_degraded_timer();
      if (!config_.fstype.empty() && config_.fstype != source.fstype) {
        fail(fmt::format("--fstype {} disagrees with the probe: {} on {} is {}", config_.fstype, config_.source_text,
                         source.device, source.fstype));
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
  std::string owner_data;
  if (config_.credentials && (source.fstype == "vfat" || source.fstype == "exfat"))
    owner_data = fmt::format("uid={},gid={}", config_.credentials->uid, config_.credentials->gid);
  std::string data = join_data({source.fstype == "btrfs" ? source.member_data : "", degraded ? "degraded" : "",
                                owner_data, config_.options.data, config_.data});
  status_.mount_data = data;
  try {
    status_.mount_called_usec = now_usec();
    mount_point_.mount(source, config_.options.flags, data);
    status_.mounted_at_usec = now_usec();
  } catch (const UnsupportedFilesystem& e) {
    // Trying again cannot help until the kernel changes: wait for Start.
    unsupported_type_ = source.fstype;
    set_error(e.what());
    set_state(State::failed);
    return;
  } catch (const std::exception& e) {
    fail(e.what());
    return;
  }
  retry_backoff_.reset();
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

void Gate::adopt(const SourceState& source, const os::MountEntry& top) {
  try {
    mount_point_.adopt(source);
  } catch (const std::exception& e) {
    fail(fmt::format("not adopting what is mounted on {}: {}", config_.target, e.what()));
    return;
  }
  log(Level::notice, "gate: adopting {} already mounted on {}", top.source, config_.target);
  status_.mount_data = top.super_options;
  status_.degraded = false;
  status_.last_error.clear();
  set_state(State::mounted);
  start_program();
}

void Gate::start_program() {
  if (status_.state != State::mounted || supervisor_.running()) return;
  // Never run the program on the bare directory: check the mount is there.
  std::vector<os::MountEntry> mounts;
  try {
    mounts = mount_point_.mounts();
  } catch (const os::OsError& e) {
    set_error(e.what());
  }
  if (mounts.empty()) {
    set_error(fmt::format("{} is not mounted any more; not starting {}", config_.target, config_.argv.front()));
    mount_point_.forget();
    set_state(State::waiting);
    evaluate();
    return;
  }
  try {
    supervisor_.start();
  } catch (const os::OsError& e) {
    set_error(e.what());
    status_.last_exit_status = "could not be started";
    ++status_.restarts;
    if (config_.restart == RestartPolicy::no) {
      finish(127);
      return;
    }
    supervisor_.restart_later([this] { start_program(); });
    publish();
    return;
  }
  status_.started_at_usec = now_usec();
  status_.program_pid = supervisor_.pid();
  log(Level::info, "gate: started {} (pid {})", config_.argv.front(), supervisor_.pid());
  set_state(status_.degraded ? State::degraded : State::running);
}

void Gate::on_program_exit(const os::ExitStatus& exit) {
  pid_t pid = status_.program_pid;
  status_.program_pid = 0;
  status_.last_exit_status = describe(exit);
  ++status_.restarts;
  log(Level::warning, "gate: {} (pid {}) {}", config_.argv.front(), pid, status_.last_exit_status);
  bool failed = exit.signalled || exit.code != 0;
  bool again = config_.restart == RestartPolicy::always || (config_.restart == RestartPolicy::on_failure && failed);
  if (!again) {
    finish(exit.signalled ? 128 + exit.code : exit.code);
    return;
  }
  set_state(State::mounted);
  supervisor_.restart_later([this] { start_program(); });
}

void Gate::on_program_unkillable() {
  // A process in uninterruptible sleep on a dead disk survives SIGKILL.
  // Detach the filesystem so nothing new reaches it; the program is reaped
  // (and the stop goes on) whenever the kernel lets it go.
  std::string detached = mount_point_.detach();
  status_.mount_data.clear();
  status_.degraded = false;
  std::string error = fmt::format(
      "{} (pid {}) survived SIGKILL for {} ms (stuck on a dead disk?): {} detached{}", config_.argv.front(),
      supervisor_.pid(), config_.stop_timeout.count(), config_.target, detached.empty() ? "" : ": " + detached);
  if (shutting_down_) {
    set_error(error);
    set_state(State::stopped);
    if (auto done = std::move(shutdown_done_)) done();
    return;
  }
  fail(error);
}

void Gate::finish(int code) {
  log(Level::notice, "gate: not restarting {} (--restart {}); unmounting", config_.argv.front(),
      config_.restart == RestartPolicy::no ? "no" : "on-failure");
  unmount();
  set_state(State::stopped);
  if (finished_) finished_(code);
}

void Gate::stop_program(std::function<void()> next) {
  if (!supervisor_.running()) {
    supervisor_.cancel_restart();
    next();
    return;
  }
  set_state(State::stopping);
  supervisor_.stop([this, next = std::move(next)] {
    if (supervisor_.last_exit()) status_.last_exit_status = describe(*supervisor_.last_exit());
    log(Level::info, "gate: {} (pid {}) stopped: {}", config_.argv.front(), status_.program_pid,
        status_.last_exit_status);
    status_.program_pid = 0;
    publish();
    next();
  });
}

void Gate::unmount() {
  if (std::string error = mount_point_.unmount(); !error.empty()) set_error(error);
  status_.mount_data.clear();
  status_.degraded = false;
}

bool Gate::members_still_there() const {
  for (const std::string& node : mount_point_.members()) {
    const devices::Device* device = map_->find_node(node);
    if (!device || device->kernel.size_bytes == 0) return false;
    switch (device->identity.state) {
      case devices::Identity::State::unprobed:
        break;  // being probed again; not gone
      case devices::Identity::State::identified:
        if (!mount_point_.uuid().empty() &&
            devices::fold_uuid(probe::tag_value(device->identity.tags, "UUID")) !=
                devices::fold_uuid(mount_point_.uuid()))
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
    if (status_.state != State::waiting || !map_ || supervisor_.running()) return;
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
  unsupported_type_.clear();
  cancel_retry();
  retry_backoff_.reset();
  set_state(State::waiting);
  evaluate();
}

void Gate::stop() {
  if (status_.state == State::stopped || shutting_down_) return;
  log(Level::info, "gate: stop requested");
  disarm_degraded_timer();
  cancel_retry();
  stop_program([this] {
    unmount();
    set_state(State::stopped);
  });
}

void Gate::restart_program() {
  if (status_.state == State::stopping || status_.state == State::stopped || shutting_down_) return;
  if (supervisor_.running()) {
    stop_program([this] {
      set_state(State::mounted);
      supervisor_.reset_backoff();
      evaluate();  // a member may have gone while the program stopped
      start_program();
    });
  } else if (status_.state == State::mounted) {
    supervisor_.cancel_restart();
    start_program();
  }
}

void Gate::reload_program() {
  if (!supervisor_.running() || supervisor_.stopping()) return;
  log(Level::info, "gate: sending SIGHUP to {} (pid {})", config_.argv.front(), supervisor_.pid());
  supervisor_.signal(SIGHUP);
}

void Gate::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  disarm_degraded_timer();
  cancel_retry();
  shutdown_done_ = std::move(done);
  stop_program([this] {
    unmount();
    set_state(State::stopped);
    if (auto done = std::move(shutdown_done_)) done();
  });
}

void Gate::fail(std::string error) {
  set_error(std::move(error));
  set_state(State::failed);
  if (retry_timer_ || shutting_down_) return;
  auto delay = retry_backoff_.next();
  log(Level::info, "gate: trying again in {} ms",
      std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  retry_timer_ = loop_.after(delay, [this] {
    retry_timer_.reset();
    if (status_.state != State::failed) return;
    set_state(State::waiting);
    evaluate();
  });
}

void Gate::cancel_retry() {
  if (retry_timer_) loop_.cancel(*retry_timer_);
  retry_timer_.reset();
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
