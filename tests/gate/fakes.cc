#include "gate/fakes.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <catch2/catch.hpp>
#include <fmt/format.h>

namespace diskgate::gate::fakes {

// ---- ManualLoop ----

ManualLoop::ManualLoop() : now_(Clock::time_point(std::chrono::hours(24))) {}

Loop::TimerId ManualLoop::after(Clock::duration delay, std::function<void()> callback) {
  TimerId id = next_id_++;
  Clock::time_point when = now_ + std::max(delay, Clock::duration::zero());
  timers_.emplace(std::make_pair(when, id), std::move(callback));
  deadlines_.emplace(id, when);
  return id;
}

void ManualLoop::cancel(TimerId id) {
  auto it = deadlines_.find(id);
  if (it == deadlines_.end()) return;
  timers_.erase({it->second, id});
  deadlines_.erase(it);
}

void ManualLoop::watch_readable(int fd, std::function<void()> callback) {
  REQUIRE(fd >= 0);
  watches_[fd] = std::move(callback);
}

void ManualLoop::unwatch(int fd) { watches_.erase(fd); }

void ManualLoop::advance(Clock::duration delta) {
  Clock::time_point until = now_ + delta;
  while (!timers_.empty() && timers_.begin()->first.first <= until) {
    auto node = timers_.extract(timers_.begin());
    deadlines_.erase(node.key().second);
    now_ = node.key().first;
    node.mapped()();
  }
  now_ = until;
}

std::optional<Loop::Clock::duration> ManualLoop::next_timer() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->first.first - now_;
}

bool ManualLoop::fire(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return false;
  auto callback = it->second;  // the callback may unwatch itself
  callback();
  return true;
}

// ---- FakePlatform ----

namespace {
std::string signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGKILL: return "SIGKILL";
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
  }
  return std::to_string(signal);
}

// Pops the errno for the next call of a kind; 0 for success.
int next_error(std::deque<int>& errors) {
  if (errors.empty()) return 0;
  int error = errors.front();
  errors.pop_front();
  return error;
}
}  // namespace

FakePlatform::~FakePlatform() {
  for (auto& [pid, child] : children_)
    if (!child.reaped && child.fd >= 0) ::close(child.fd);
}

void FakePlatform::mount(const std::string& source, const std::string& target, const std::string& fstype,
                         unsigned long flags, const std::string& data) {
  calls.push_back(fmt::format("mount {} {} {} flags={:#x} data={}", source, target, fstype, flags, data));
  if (unsupported_types.contains(fstype))
    throw os::OsError(fmt::format("mount {} on {} ({}): fsopen: {}", source, target, fstype, std::strerror(ENODEV)),
                      ENODEV);
  if (int error = next_error(mount_errors))
    throw os::OsError(fmt::format("mount {} on {} ({}): {}", source, target, fstype, std::strerror(error)), error);
  if (!mount_appears) return;
  os::MountEntry entry;
  entry.root = "/";
  entry.target = target;
  entry.options = "rw";
  entry.fstype = fstype;
  entry.source = source;
  entry.super_options = data.empty() ? "rw" : "rw," + data;
  table.push_back(entry);
}

void FakePlatform::unmount(const std::string& target, bool lazy) {
  calls.push_back(lazy ? "unmount " + target + " lazy" : "unmount " + target);
  if (int error = next_error(unmount_errors))
    throw os::OsError(fmt::format("unmount {}: {}", target, std::strerror(error)), error);
  auto top = std::find_if(table.rbegin(), table.rend(), [&](const os::MountEntry& e) { return e.target == target; });
  if (top == table.rend()) throw os::OsError(fmt::format("unmount {}: {}", target, std::strerror(EINVAL)), EINVAL);
  table.erase(std::next(top).base());
}

std::vector<os::MountEntry> FakePlatform::mounts_at(const std::string& target) {
  std::vector<os::MountEntry> out;
  for (const os::MountEntry& entry : table)
    if (entry.target == target) out.push_back(entry);
  return out;
}

std::string FakePlatform::lock_directory(const std::string& dir) {
  calls.push_back("lock " + dir);
  if (!mounts_at(dir).empty()) {
    // SystemPlatform refuses to lock the root of a mounted filesystem.
    ++locks_while_mounted;
    throw os::OsError(fmt::format("lock_directory {}: a filesystem is mounted there", dir), EBUSY);
  }
  if (int error = next_error(lock_errors))
    throw os::OsError(fmt::format("lock_directory {}: {}", dir, std::strerror(error)), error);
  return lock_note;
}

std::vector<std::pair<std::string, std::string>> FakePlatform::read_tags(const std::string& node) {
  if (auto it = disk_overrides.find(node); it != disk_overrides.end()) return it->second;
  const devices::Device* device = disks ? disks->find_node(node) : nullptr;
  if (!device) throw os::OsError(fmt::format("open {}: {}", node, std::strerror(ENOENT)), ENOENT);
  std::vector<std::pair<std::string, std::string>> tags;
  for (const probe::Tag& tag : device->identity.tags) tags.emplace_back(tag.name, tag.value);
  return tags;
}

os::MountedFilesystem FakePlatform::inspect_mount(const std::string& target) {
  if (kernel_view) return *kernel_view;
  std::vector<os::MountEntry> mounts = mounts_at(target);
  if (mounts.empty()) throw os::OsError(fmt::format("inspect {}: nothing mounted", target), EINVAL);
  // As the kernel would: the superblock of the mounted source, and for
  // btrfs every device of that fsid it knows.
  auto tags = read_tags(mounts.back().source);
  auto value = [](const auto& tags, std::string_view name) {
    for (const auto& [key, v] : tags)
      if (key == name) return v;
    return std::string();
  };
  os::MountedFilesystem view;
  view.uuid = devices::fold_uuid(value(tags, "UUID"));
  if (value(tags, "TYPE") == "btrfs" && disks) {
    for (const devices::Device* device : disks->all()) {
      auto member = read_tags(device->kernel.node);
      if (devices::fold_uuid(value(member, "UUID")) != view.uuid) continue;
      view.members.push_back({0, value(member, "UUID_SUB"), device->kernel.node});
    }
    view.num_devices = view.members.size();
  }
  return view;
}

std::vector<os::ProcessInfo> FakePlatform::processes_in_group(pid_t pgid) {
  if (auto it = groups.find(pgid); it != groups.end()) return it->second;
  if (auto it = children_.find(pgid); it != children_.end() && !it->second.status)
    return {{pgid, start_time_of(pgid)}};
  return {};
}

std::optional<std::uint64_t> FakePlatform::process_start_time(pid_t pid) {
  if (auto it = children_.find(pid); it != children_.end() && !it->second.status) return start_time_of(pid);
  return std::nullopt;
}

std::optional<std::string> FakePlatform::read_text(const std::string& path) {
  if (auto it = files.find(path); it != files.end()) return it->second;
  return std::nullopt;
}

void FakePlatform::write_text(const std::string& path, const std::string& text) { files[path] = text; }

void FakePlatform::remove_file(const std::string& path) { files.erase(path); }

void FakePlatform::give_root_to(const std::string& target, const os::Credentials& credentials) {
  calls.push_back(fmt::format("chown {} {}:{}", target, credentials.uid, credentials.gid));
}

os::Platform::Child FakePlatform::spawn(const std::vector<std::string>& argv,
                                        const std::optional<os::Credentials>& credentials) {
  spawn_credentials.push_back(credentials);
  std::string line = "spawn";
  for (const std::string& arg : argv) line += " " + arg;
  calls.push_back(line);
  if (!guarded_target.empty()) mounted_at_spawn.push_back(!mounts_at(guarded_target).empty());
  if (int error = next_error(spawn_errors))
    throw os::OsError(fmt::format("spawn {}: {}", argv.empty() ? "" : argv.front(), std::strerror(error)), error);
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(fd >= 0);
  pid_t pid = next_pid_++;
  children_[pid] = FakeChild{fd, std::nullopt, false};
  return Child{pid, fd};
}

void FakePlatform::signal_group(pid_t pgid, int signal) {
  calls.push_back(fmt::format("signal {} {}", pgid, signal_name(signal)));
}

std::optional<os::ExitStatus> FakePlatform::reap(const Child& child) {
  auto it = children_.find(child.pid);
  REQUIRE(it != children_.end());
  FakeChild& fake = it->second;
  REQUIRE_FALSE(fake.reaped);  // reaping twice is a bug in the caller
  CHECK(child.pidfd == fake.fd);
  if (!fake.status) return std::nullopt;
  ::close(fake.fd);
  fake.reaped = true;
  return fake.status;
}

void FakePlatform::end(pid_t pid, os::ExitStatus status) {
  auto it = children_.find(pid);
  REQUIRE(it != children_.end());
  REQUIRE_FALSE(it->second.reaped);
  it->second.status = status;
  std::uint64_t one = 1;
  REQUIRE(::write(it->second.fd, &one, sizeof one) == sizeof one);
}

int FakePlatform::pidfd_of(pid_t pid) const {
  auto it = children_.find(pid);
  return it == children_.end() ? -1 : it->second.fd;
}

int FakePlatform::open_pidfds() const {
  return static_cast<int>(std::count_if(children_.begin(), children_.end(),
                                        [](const auto& entry) { return !entry.second.reaped; }));
}

int FakePlatform::mount_count() const {
  return static_cast<int>(
      std::count_if(calls.begin(), calls.end(), [](const std::string& c) { return c.starts_with("mount "); }));
}

// ---- Device-map events ----

void identify(devices::DeviceMap& map, const std::string& name, const devices::Identity& identity) {
  auto token = map.pending_probe(name);
  REQUIRE(token);
  map.apply(devices::Identified{name, identity, *token});
}

void add(devices::DeviceMap& map, const devices::KernelDevice& device, const devices::Identity& identity) {
  map.apply(devices::Upsert{device});
  identify(map, device.name, identity);
}

devices::Spec spec(std::string_view text) {
  auto parsed = devices::parse_spec(text);
  INFO("spec: " << std::string(text));
  REQUIRE(std::holds_alternative<devices::Spec>(parsed));
  return std::get<devices::Spec>(parsed);
}

std::string describe(const Status& s) {
  return fmt::format(
      "state={} device={} fstype={} members={}/{} mount_data={} pid={} restarts={} last_exit={} "
      "last_error={} degraded={} mounted_at={} started_at={}",
      to_string(s.state), s.device, s.fstype, s.members_present, s.members_expected, s.mount_data, s.program_pid,
      s.restarts, s.last_exit_status, s.last_error, s.degraded, s.mounted_at_usec, s.started_at_usec);
}

// ---- Harness ----

Config config_for(const std::string& source_text) {
  Config config;
  config.source_text = source_text;
  config.source = spec(source_text);
  config.target = target;
  config.argv = {"rest-server", "--path", target, "--no-auth"};
  config.runtime_dir = runtime_dir;
  return config;
}

Harness::Harness(Config config) {
  platform.guarded_target = config.target;
  platform.disks = &map;
  gate = std::make_unique<Gate>(std::move(config), platform, loop);
  gate->on_status([this](const Status& status) { statuses.push_back(status); });
  gate->on_finished([this](int code) {
    finished.push_back(code);
    platform.calls.push_back(fmt::format("finished {}", code));
  });
}

Harness::~Harness() {
  gate.reset();
  // Whatever ran must have been spawned on a mounted target.
  for (bool mounted : platform.mounted_at_spawn) CHECK(mounted);
  CHECK(platform.locks_while_mounted == 0);
}

void Harness::update() {
  gate->update(map);
  check_published();
}

void Harness::add(const devices::KernelDevice& device, const devices::Identity& identity) {
  upsert(device);
  identify(device.name, identity);
}

void Harness::upsert(const devices::KernelDevice& device, bool media_changed) {
  if (!map.apply(devices::Upsert{device, media_changed}).empty()) update();
}

void Harness::identify(const std::string& name, const devices::Identity& identity) {
  fakes::identify(map, name, identity);
  update();
}

void Harness::remove(const std::string& name) {
  if (!map.apply(devices::Removed{name}).empty()) update();
}

void Harness::end_program(os::ExitStatus status) {
  pid_t pid = platform.last_pid();
  REQUIRE(pid >= FakePlatform::first_pid);
  int fd = platform.pidfd_of(pid);
  platform.end(pid, status);
  REQUIRE(loop.fire(fd));
  check_published();
}

void Harness::advance(Loop::Clock::duration delta) {
  loop.advance(delta);
  check_published();
}

void Harness::start() {
  gate->start();
  check_published();
}

void Harness::stop() {
  gate->stop();
  check_published();
}

void Harness::restart_program() {
  gate->restart_program();
  check_published();
}

void Harness::reload_program() {
  gate->reload_program();
  check_published();
}

void Harness::shutdown() {
  gate->shutdown([this] {
    ++done;
    platform.calls.push_back("done");
  });
  check_published();
}

std::vector<std::string> Harness::take_calls() {
  std::vector<std::string> out;
  out.swap(platform.calls);
  return out;
}

std::vector<State> Harness::seen_states() const {
  std::vector<State> out;
  for (const Status& s : statuses)
    if (out.empty() || out.back() != s.state) out.push_back(s.state);
  return out;
}

std::uint64_t Harness::now_usec() const {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(loop.now().time_since_epoch()).count());
}

void Harness::check_published() const {
  INFO("the status listener was not told of the last change");
  CHECK(describe(statuses.empty() ? Status{} : statuses.back()) == describe(gate->status()));
}

}  // namespace diskgate::gate::fakes
