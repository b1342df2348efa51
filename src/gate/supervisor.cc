#include "gate/supervisor.h"

#include <signal.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "common/log.h"

namespace diskgate::gate {

namespace {
constexpr auto healthy_run = std::chrono::seconds(60);
// How often a leftover program's group is looked at while it stops.
constexpr auto reclaim_poll = std::chrono::milliseconds(100);

std::string program_name(const std::vector<std::string>& argv) { return argv.empty() ? "program" : argv.front(); }

std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}
}  // namespace

Loop::Clock::duration Backoff::next() {
  auto delay = delay_;
  delay_ = std::min<Loop::Clock::duration>(delay_ * 2, longest);
  return delay;
}

std::string format_program_record(const os::ProcessInfo& process) {
  return fmt::format("pid={}\nstart_time={}\n", process.pid, process.start_time);
}

std::optional<os::ProcessInfo> parse_program_record(std::string_view text) {
  std::optional<std::uint64_t> pid, start_time;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    if (end == std::string_view::npos) return std::nullopt;  // every line ends with a newline
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    std::size_t equals = line.find('=');
    if (equals == std::string_view::npos) return std::nullopt;
    std::string_view key = line.substr(0, equals);
    auto value = number(line.substr(equals + 1));
    if (!value) return std::nullopt;
    if (key == "pid" && !pid) pid = value;
    else if (key == "start_time" && !start_time) start_time = value;
    else return std::nullopt;
  }
  // pid 0 and 1 (and anything past pid_max) never name a program of ours.
  if (!pid || !start_time || *pid <= 1 || *pid > 4'194'304) return std::nullopt;
  return os::ProcessInfo{static_cast<pid_t>(*pid), *start_time};
}

std::string program_record_path(const std::string& runtime_dir, const std::string& target) {
  std::string name;
  std::size_t start = target.find_first_not_of('/');
  for (std::size_t i = start == std::string::npos ? target.size() : start; i < target.size(); ++i) {
    char c = target[i];
    if (c == '/') {
      if (i + 1 < target.size() && target[i + 1] != '/') name += '-';
    } else if (c == '-' || c == '\\') {
      name += fmt::format("\\x{:02x}", c);
    } else {
      name += c;
    }
  }
  return runtime_dir + "/" + (name.empty() ? "-" : name) + ".program";
}

Supervisor::Supervisor(Settings settings, os::Platform& platform, Loop& loop)
    : settings_(std::move(settings)), platform_(platform), loop_(loop) {}

Supervisor::~Supervisor() {
  try {
    for (auto* timer : {&kill_timer_, &restart_timer_, &reclaim_timer_}) cancel_timer(*timer);
    if (child_) {
      // Only reached when the daemon unwinds without a clean stop: never
      // leave the program running unsupervised. The record stays, so the
      // next diskgated checks the group is gone.
      loop_.unwatch(child_->pidfd);
      platform_.signal_group(child_->pid, SIGKILL);
    }
  } catch (...) {
    // Nothing left to tell; the program got PR_SET_PDEATHSIG besides.
  }
}

void Supervisor::cancel_timer(std::optional<Loop::TimerId>& timer) {
  if (timer) loop_.cancel(*timer);
  timer.reset();
}

void Supervisor::report(const std::string& error) {
  if (error_) error_(error);
}

// ---- A program left by an earlier run ----

std::vector<os::ProcessInfo> Supervisor::leftovers() {
  if (!leftover_) return {};
  std::vector<os::ProcessInfo> group;
  try {
    group = platform_.processes_in_group(leftover_->pid);
  } catch (const os::OsError& e) {
    // Cannot look: assume it still runs rather than start a second one.
    report(e.what());
    return {*leftover_};
  }
  // A leader with another start time means the pid (and so the group id)
  // was reused: that group is someone else's. Without its leader the group
  // is still ours: a group id is not reused while any member lives.
  for (const os::ProcessInfo& process : group)
    if (process.pid == leftover_->pid && process.start_time != leftover_->start_time) return {};
  std::erase_if(group, [&](const os::ProcessInfo& p) { return p.start_time < leftover_->start_time; });
  return group;
}

void Supervisor::reclaim(std::function<void(bool stopped)> done) {
  if (settings_.record_path.empty()) {
    done(true);
    return;
  }
  std::optional<std::string> text;
  try {
    text = platform_.read_text(settings_.record_path);
  } catch (const os::OsError& e) {
    report(e.what());
  }
  if (!text) {
    done(true);
    return;
  }
  leftover_ = parse_program_record(*text);
  if (!leftover_) {
    log(Level::warning, "gate: {}: not a program record; ignoring it", settings_.record_path);
    remove_record();
    done(true);
    return;
  }
  reclaim_done_ = std::move(done);
  std::vector<os::ProcessInfo> group = leftovers();
  if (group.empty()) {
    finish_reclaim(true);
    return;
  }
  log(Level::warning, "gate: {} (pid {}) left by an earlier diskgated still runs ({} process{}): stopping it",
      program_name(settings_.argv), leftover_->pid, group.size(), group.size() == 1 ? "" : "es");
  signal_leftover(SIGTERM);
}

void Supervisor::reclaim_step(int signal_sent, Loop::Clock::time_point since) {
  reclaim_timer_ = loop_.after(reclaim_poll, [this, signal_sent, since] {
    reclaim_timer_.reset();
    std::vector<os::ProcessInfo> group = leftovers();
    if (group.empty()) {
      log(Level::notice, "gate: the earlier {} (pid {}) is gone", program_name(settings_.argv), leftover_->pid);
      finish_reclaim(true);
      return;
    }
    if (loop_.now() - since < settings_.stop_timeout) {
      reclaim_step(signal_sent, since);
      return;
    }
    if (signal_sent == SIGKILL) {
      report(fmt::format("the earlier {} (pid {}) survived SIGKILL for {} ms; not starting another",
                         program_name(settings_.argv), leftover_->pid, settings_.stop_timeout.count()));
      finish_reclaim(false);
      return;
    }
    log(Level::warning, "gate: the earlier {} (pid {}) ignored SIGTERM: sending SIGKILL", program_name(settings_.argv),
        leftover_->pid);
    signal_leftover(SIGKILL);
  });
}

void Supervisor::signal_leftover(int signal) {
  try {
    platform_.signal_group(leftover_->pid, signal);
  } catch (const os::OsError& e) {
    report(e.what());
  }
  reclaim_step(signal, loop_.now());
}

void Supervisor::finish_reclaim(bool stopped) {
  if (stopped) remove_record();
  leftover_.reset();
  auto done = std::move(reclaim_done_);
  reclaim_done_ = nullptr;
  if (done) done(stopped);
}

// ---- Our program ----

void Supervisor::start() {
  if (child_) return;
  child_ = platform_.spawn(settings_.argv, settings_.credentials);
  started_at_ = loop_.now();
  loop_.watch_readable(child_->pidfd, [this] { on_child_readable(); });
  write_record();
}

void Supervisor::write_record() {
  if (settings_.record_path.empty()) return;
  try {
    std::optional<std::uint64_t> start_time = platform_.process_start_time(child_->pid);
    if (!start_time) return;  // it has ended already; nothing to find later
    platform_.write_text(settings_.record_path, format_program_record({child_->pid, *start_time}));
  } catch (const os::OsError& e) {
    // Without the record a crash of ours is still covered by PDEATHSIG.
    report(e.what());
  }
}

void Supervisor::remove_record() {
  if (settings_.record_path.empty()) return;
  try {
    platform_.remove_file(settings_.record_path);
  } catch (const os::OsError& e) {
    report(e.what());
  }
}

void Supervisor::on_child_readable() {
  if (!child_) return;
  std::optional<os::ExitStatus> exit;
  try {
    exit = platform_.reap(*child_);
  } catch (const os::OsError& e) {
    // It cannot be waited for (it is gone): treat it as ended.
    report(e.what());
    exit = os::ExitStatus{true, SIGKILL};
  }
  if (!exit) return;
  last_exit_ = exit;
  loop_.unwatch(child_->pidfd);
  child_.reset();
  remove_record();
  cancel_timer(kill_timer_);
  if (stop_requested_) {
    stop_requested_ = false;
    auto next = std::move(after_stop_);
    after_stop_ = nullptr;
    if (next) next();
    return;
  }
  if (loop_.now() - started_at_ >= healthy_run) backoff_.reset();
  if (exited_) exited_(*exit);
}

void Supervisor::stop(std::function<void()> next) {
  cancel_restart();
  if (!child_) {
    next();
    return;
  }
  after_stop_ = std::move(next);
  if (stop_requested_) return;  // already stopping: keep its timers
  stop_requested_ = true;
  signal(SIGTERM);
  arm_kill_timer();
}

void Supervisor::arm_kill_timer() {
  kill_timer_ = loop_.after(settings_.stop_timeout, [this] {
    kill_timer_.reset();
    if (!child_) return;
    log(Level::warning, "gate: {} (pid {}) ignored SIGTERM for {} ms: sending SIGKILL", program_name(settings_.argv),
        child_->pid, settings_.stop_timeout.count());
    signal(SIGKILL);
    kill_timer_ = loop_.after(settings_.stop_timeout, [this] {
      kill_timer_.reset();
      if (child_ && unkillable_) unkillable_();
    });
  });
}

void Supervisor::signal(int signal) {
  if (!child_) return;
  try {
    platform_.signal_group(child_->pid, signal);
  } catch (const os::OsError& e) {
    report(e.what());  // the kill timer still follows a failed SIGTERM
  }
}

void Supervisor::restart_later(std::function<void()> start) {
  auto delay = backoff_.next();
  log(Level::info, "gate: restarting {} in {} ms", program_name(settings_.argv),
      std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  cancel_timer(restart_timer_);
  restart_timer_ = loop_.after(delay, [this, start = std::move(start)] {
    restart_timer_.reset();
    start();
  });
}

void Supervisor::cancel_restart() { cancel_timer(restart_timer_); }

}  // namespace diskgate::gate
