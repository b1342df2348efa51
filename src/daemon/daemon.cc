#include "daemon/daemon.h"

#include <malloc.h>
#include <poll.h>
#include <unistd.h>

#include "common/log.h"
#if DISKGATE_DBUS
#include "dbus/service.h"
#else
// Built without D-Bus (-Ddbus=disabled): no Service is ever made.
namespace diskgate::dbus {
class Service {
 public:
  void publish(const std::vector<devices::Change>&) {}
};
}  // namespace diskgate::dbus
#endif
#include "udev/block_devices.h"
#include "udev/node_watcher.h"

namespace diskgate::daemon {

namespace {
std::string describe(const devices::Device& device) {
  std::string text = device.kernel.node;
  for (const probe::Tag& tag : device.identity.tags)
    if (tag.name == "TYPE" || tag.name == "UUID" || tag.name == "LABEL" || tag.name == "PARTUUID")
      text += fmt::format(" {}=\"{}\"", tag.name, tag.value);
  return text;
}
}  // namespace

DeviceMonitor::DeviceMonitor(EventLoop& loop, udev::BlockDevices& devices, udev::BlockDevices* kernel_devices,
                             udev::NodeWatcher* watcher, ProbeWorker& worker)
    : loop_(loop),
      devices_(devices),
      kernel_devices_(kernel_devices),
      watcher_(watcher),
      worker_(worker),
      enumerator_(udev::enumerate_block_devices),
      watching_nodes_(watcher && !kernel_devices) {}

DeviceMonitor::~DeviceMonitor() {
  if (scan_timer_) loop_.cancel(*scan_timer_);
  if (udevd_timer_) loop_.cancel(*udevd_timer_);
  if (trim_timer_) loop_.cancel(*trim_timer_);
}

#if DISKGATE_DBUS
void DeviceMonitor::attach_bus(dbus::Bus& bus, std::function<void(dbus::MessageWriter&)> other_objects) {
  service_ = std::make_unique<dbus::Service>(
      bus, map_, [this](std::function<void()> done) { rescan(std::move(done)); }, std::move(other_objects));
}
#endif

void DeviceMonitor::detach_bus() noexcept { service_.reset(); }

void DeviceMonitor::start() {
  loop_.watch(devices_.fd(), POLLIN, [this](short) { on_uevents(devices_); });
  if (kernel_devices_) loop_.watch(kernel_devices_->fd(), POLLIN, [this](short) { on_uevents(*kernel_devices_); });
  loop_.watch(worker_.fd(), POLLIN, [this](short) { on_probe_results(); });
  loop_.watch(enumerator_.fd(), POLLIN, [this](short) { on_scan_done(); });
  if (watcher_) loop_.watch(watcher_->fd(), POLLIN, [this](short) { on_written_nodes(); });
  // The first enumeration runs here, before READY: nothing waits on the loop yet.
  apply(devices::Snapshot{devices_.enumerate()});
}

void DeviceMonitor::rescan(std::function<void()> done) {
  log(Level::debug, "rescan requested");
  request_scan(false, std::move(done));
}

void DeviceMonitor::request_scan(bool lost_events, std::function<void()> done) {
  bool starts = scans_.request(lost_events).has_value();
  if (done) (starts ? running_waiters_ : queued_waiters_).push_back(std::move(done));
  if (starts) start_scan();
}

void DeviceMonitor::start_scan() {
  // A scan enumerates and probes every device: callers in a loop get one
  // every min_scan_interval at most (their calls join the next one).
  auto due = last_scan_started_ + min_scan_interval;
  if (auto now = loop_.now(); now < due) {
    if (!scan_timer_) scan_timer_ = loop_.after(due - now, [this] {
      scan_timer_.reset();
      start_scan();
    });
    return;
  }
  last_scan_started_ = loop_.now();
  const ScanQueue::Scan& scan = scans_.current();
  if (scan.lost_events)
    log(Level::warning, "enumerating every block device again after lost uevents: probing each anew");
  else
    log(Level::info, "rescanning every block device ({} request{})", scan.requests, scan.requests == 1 ? "" : "s");
  touched_.clear();
  if (enumerator_.start()) return;
  // No thread to be had: enumerate here rather than not at all.
  log(Level::warning, "cannot start a thread to enumerate block devices: enumerating on the event loop");
  Enumerator::Outcome outcome;
  try {
    outcome = udev::enumerate_block_devices();
  } catch (const std::exception& e) {
    outcome = std::string(e.what());
  }
  finish_scan(std::move(outcome));
}

void DeviceMonitor::on_scan_done() { finish_scan(enumerator_.collect()); }

void DeviceMonitor::finish_scan(Enumerator::Outcome outcome) {
  ScanQueue::Scan scan = scans_.current();
  if (auto* error = std::get_if<std::string>(&outcome)) {
    log(Level::warning, "{}", *error);
  } else {
    // A uevent received while the enumeration ran is as new as what it saw
    // of that device, or newer (a device removed meanwhile must not come
    // back): for those devices the map's own facts stand.
    auto& listed = std::get<std::vector<devices::KernelDevice>>(outcome);
    std::vector<devices::KernelDevice> now;
    now.reserve(listed.size() + touched_.size());
    for (devices::KernelDevice& device : listed)
      if (!touched_.contains(device.name)) now.push_back(std::move(device));
    for (const std::string& name : touched_)
      if (const devices::Device* device = map_.find(name)) now.push_back(device->kernel);
    // Lost events: identities may be stale (a disk swapped unseen) and are
    // forgotten. A rescan keeps them until the new probe results are in.
    apply(devices::Snapshot{std::move(now), scan.lost_events, !scan.lost_events});
  }
  touched_.clear();
  for (auto& done : std::exchange(running_waiters_, {})) done();
  if (scans_.finished()) {
    running_waiters_ = std::exchange(queued_waiters_, {});
    start_scan();
  }
}

void DeviceMonitor::apply(const devices::Event& event, const std::string& written) {
  std::vector<devices::Change> changes = map_.apply(event);
  for (const devices::Change& change : changes) {
    log_change(change);
    if (auto* probe = std::get_if<devices::NeedsProbe>(&change)) {
      if (const devices::Device* device = map_.find(probe->name))
        worker_.submit(device->kernel, probe->token, device->kernel.node == written ? std::string() : written);
    } else if (auto* added = std::get_if<devices::DeviceAdded>(&change); added && watching_nodes_) {
      if (const devices::Device* device = map_.find(added->name)) watch_node(device->kernel.node);
    } else if (auto* removed = std::get_if<devices::DeviceRemoved>(&change); removed && watcher_) {
      watcher_->unwatch(removed->node);
    }
  }
  // The gate hears first: publishing is a convenience and may fail (a lost
  // bus); stopping the program before a member goes is not.
  if (listener_ && !changes.empty()) listener_(changes);
  if (service_) {
    try {
      service_->publish(changes);
    } catch (const std::exception& e) {
      log(Level::warning, "D-Bus: could not publish {} change(s): {}", changes.size(), e.what());
    }
  }
  if (!changes.empty()) schedule_trim();
}

void DeviceMonitor::schedule_trim() {
  // Enumerating and probing leave freed memory inside the heap; give it back
  // once things have been quiet for a moment, so RSS reflects what is kept.
  if (trim_timer_) loop_.cancel(*trim_timer_);
  trim_timer_ = loop_.after(std::chrono::seconds(1), [this] {
    trim_timer_.reset();
    ::malloc_trim(0);
  });
}

void DeviceMonitor::log_change(const devices::Change& change) const {
  std::visit(
      [this](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, devices::DeviceAdded>) {
          if (const devices::Device* d = map_.find(c.name)) log(Level::info, "device added: {}", d->kernel.node);
        } else if constexpr (std::is_same_v<T, devices::DeviceChanged>) {
          const devices::Device* d = map_.find(c.name);
          if (!d) return;
          using State = devices::Identity::State;
          if (d->identity.state != State::unreadable) unreadable_logged_.erase(c.name);
          switch (d->identity.state) {
            case State::identified: log(Level::info, "device identified: {}", describe(*d)); break;
            case State::unidentified: log(Level::info, "device has no known signature: {}{}", d->kernel.node,
                                          d->identity.error.empty() ? "" : " (" + d->identity.error + ")"); break;
            case State::unreadable:
              if (auto [it, added] = unreadable_logged_.try_emplace(c.name, d->identity.error);
                  added || it->second != d->identity.error) {
                it->second = d->identity.error;
                log(Level::notice, "device unreadable: {}: {}", d->kernel.node, d->identity.error);
              }
              break;
            case State::unprobed: log(Level::debug, "device changed: {}", d->kernel.node); break;
          }
        } else if constexpr (std::is_same_v<T, devices::DeviceRemoved>) {
          unreadable_logged_.erase(c.name);
          log(Level::info, "device removed: {}", c.node);
        } else if constexpr (std::is_same_v<T, devices::FilesystemComplete>) {
          auto view = map_.filesystem(c.uuid);
          log(Level::notice, "filesystem complete: UUID={} ({} of {} members{}{})", c.uuid, view ? view->present : 0,
              view ? view->expected : 0, view && !view->mount_data.empty() ? ", " : "", view ? view->mount_data : "");
        } else if constexpr (std::is_same_v<T, devices::FilesystemIncomplete>) {
          log(Level::notice, "filesystem incomplete: UUID={}", c.uuid);
        } else if constexpr (std::is_same_v<T, devices::NeedsProbe>) {
          log(Level::debug, "probing {}", c.name);
        }
      },
      change);
}

void DeviceMonitor::watch_node(const std::string& node) {
  try {
    watcher_->watch(node);
  } catch (const std::exception& e) {
    log(Level::warning, "{}: cannot watch for rewrites: {}", node, e.what());
  }
}

void DeviceMonitor::watch_nodes(bool on) {
  if (!watcher_ || on == watching_nodes_) return;
  watching_nodes_ = on;
  for (const devices::Device* device : map_.all()) {
    if (on)
      watch_node(device->kernel.node);
    else
      watcher_->unwatch(device->kernel.node);
  }
}

void DeviceMonitor::on_uevents(udev::BlockDevices& source) {
  udev::Received received = source.receive();
  bool from_kernel_beside_udevd = &source == kernel_devices_;
  bool from_udevd = kernel_devices_ && !from_kernel_beside_udevd;
  for (const udev::Uevent& uevent : received.events) {
    const std::string& name = uevent.device.name;
    if (scans_.running()) touched_.insert(name);
    if (from_kernel_beside_udevd) expect_udevd(name);
    if (from_udevd) heard_udevd(name);
    switch (uevent.action) {
      case udev::Action::add:
      case udev::Action::change:
        // udevd passes events on late: an add or change of a device the
        // kernel has removed since (gone from sysfs) must not bring it back.
        if (from_udevd && ::access(uevent.device.syspath.c_str(), F_OK) != 0) break;
        // Loop attach/detach and new media arrive as "change": probe again.
        // In udev mode both sockets bring each event: the probe worker
        // coalesces the second probe. Only udevd's change can stand for a
        // write (its inotify watch): the probes of the device's disk or
        // partitions then flush it first.
        apply(devices::Upsert{uevent.device, true},
              from_udevd && uevent.action == udev::Action::change ? uevent.device.node : std::string());
        break;
      case udev::Action::remove:
        // Whoever says it first: the kernel's remove is final.
        apply(devices::Removed{name});
        break;
      case udev::Action::other:
        break;
    }
  }
  if (received.overflowed) {
    log(Level::warning, "uevents from {} were lost (receive buffer overflowed)",
        from_udevd ? "udevd" : "the kernel");
    owed_.clear();  // the counts of passed-on events are off now
    // No identity can be trusted until every device was read again (a disk
    // may have been swapped unseen): forget them now, not when the
    // enumeration is back, so that the gate waits meanwhile.
    std::vector<devices::KernelDevice> known;
    for (const devices::Device* device : map_.all()) known.push_back(device->kernel);
    apply(devices::Snapshot{std::move(known), true, false});
    request_scan(true);
  }
}

void DeviceMonitor::expect_udevd(const std::string& name) {
  if (udevd_silent_) return;
  Owed& owed = owed_[name];
  if (++owed.count == 0) {  // udevd's copy came first (its socket was read first)
    owed_.erase(name);
    return;
  }
  if (owed.count == 1) owed.since = loop_.now();
  if (!udevd_timer_) udevd_timer_ = loop_.after(udevd_patience, [this] {
    udevd_timer_.reset();
    check_udevd();
  });
}

void DeviceMonitor::heard_udevd(const std::string& name) {
  if (udevd_silent_) {
    udevd_silent_ = false;
    owed_.clear();
    log(Level::notice, "udevd is back: following its uevents again");
    watch_nodes(false);
    return;
  }
  Owed& owed = owed_[name];
  // udevd answers for this device: whatever it still owes is owed from now.
  owed.since = loop_.now();
  if (--owed.count == 0) owed_.erase(name);
}

void DeviceMonitor::check_udevd() {
  auto now = loop_.now();
  bool late = false;
  std::optional<gate::Loop::Clock::time_point> oldest;
  for (auto it = owed_.begin(); it != owed_.end();) {
    if (now - it->second.since >= udevd_patience) {
      late |= it->second.count > 0;
      it = owed_.erase(it);  // a copy of udevd's that came first and was never matched, too
      continue;
    }
    if (it->second.count > 0 && (!oldest || it->second.since < *oldest)) oldest = it->second.since;
    ++it;
  }
  if (late) {
    udevd_silent_ = true;
    owed_.clear();
    log(Level::warning, "udevd did not pass on the kernel's events for {} s: following kernel uevents alone",
        udevd_patience.count());
    // Nobody runs udevd's watch now: notice mkfs and relabels ourselves, and
    // probe every device once for what may have been written meanwhile (no
    // enumeration: the kernel's events were all heard).
    watch_nodes(true);
    std::vector<devices::KernelDevice> known;
    for (const devices::Device* device : map_.all()) known.push_back(device->kernel);
    apply(devices::Snapshot{std::move(known), false, true});
    return;
  }
  if (oldest) udevd_timer_ = loop_.after(*oldest + udevd_patience - now, [this] {
    udevd_timer_.reset();
    check_udevd();
  });
}

void DeviceMonitor::on_written_nodes() {
  udev::NodeWatcher::Received received = watcher_->receive();
  std::vector<std::string> nodes = received.written;
  if (received.overflowed)
    for (const devices::Device* device : map_.all()) nodes.push_back(device->kernel.node);
  for (const std::string& node : nodes) {
    const devices::Device* device = map_.find_node(node);
    if (!device) continue;
    log(Level::debug, "{} was written to: probing again", node);
    devices::KernelDevice kernel = device->kernel;  // apply() may invalidate `device`
    apply(devices::Upsert{kernel, true}, node);  // (its disk or partitions are probed again too)
  }
}

void DeviceMonitor::on_probe_results() {
  for (ProbeWorker::Result& result : worker_.collect())
    apply(devices::Identified{result.name, std::move(result.identity), result.token});
}

}  // namespace diskgate::daemon
