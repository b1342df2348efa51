#include "daemon/daemon.h"

#include <malloc.h>
#include <poll.h>

#include "common/log.h"
#include "dbus/service.h"
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

DeviceMonitor::DeviceMonitor(EventLoop& loop, udev::BlockDevices& devices, udev::NodeWatcher* watcher,
                             ProbeWorker& worker)
    : loop_(loop), devices_(devices), watcher_(watcher), worker_(worker) {}

DeviceMonitor::~DeviceMonitor() = default;

void DeviceMonitor::attach_bus(sdbus::IConnection& connection) {
  service_ = std::make_unique<dbus::Service>(connection, map_, [this] { rescan(); });
}

void DeviceMonitor::start() {
  loop_.watch(devices_.fd(), POLLIN, [this](short) { on_uevents(); });
  loop_.watch(worker_.fd(), POLLIN, [this](short) { on_probe_results(); });
  if (watcher_) loop_.watch(watcher_->fd(), POLLIN, [this](short) { on_written_nodes(); });
  apply(devices::Snapshot{devices_.enumerate()});
}

void DeviceMonitor::rescan() {
  log(Level::info, "rescanning every block device");
  apply(devices::Snapshot{devices_.enumerate()});
  std::vector<devices::KernelDevice> all;
  for (const devices::Device* device : map_.all()) all.push_back(device->kernel);
  for (const auto& kernel : all) apply(devices::Upsert{kernel, true});
}

void DeviceMonitor::apply(const devices::Event& event) {
  std::vector<devices::Change> changes = map_.apply(event);
  for (const devices::Change& change : changes) {
    log_change(change);
    if (auto* probe = std::get_if<devices::NeedsProbe>(&change)) {
      if (const devices::Device* device = map_.find(probe->name)) worker_.submit(device->kernel, probe->token);
    } else if (auto* added = std::get_if<devices::DeviceAdded>(&change); added && watcher_) {
      if (const devices::Device* device = map_.find(added->name)) {
        try {
          watcher_->watch(device->kernel.node);
        } catch (const std::exception& e) {
          log(Level::warning, "{}: cannot watch for rewrites: {}", device->kernel.node, e.what());
        }
      }
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

void DeviceMonitor::on_uevents() {
  udev::Received received = devices_.receive();
  for (const udev::Uevent& uevent : received.events) {
    switch (uevent.action) {
      case udev::Action::add:
      case udev::Action::change:
        // Loop attach/detach and new media arrive as "change": probe again.
        apply(devices::Upsert{uevent.device, true});
        break;
      case udev::Action::remove:
        apply(devices::Removed{uevent.device.name});
        break;
      case udev::Action::other:
        break;
    }
  }
  if (received.overflowed) {
    log(Level::warning, "uevents were lost (receive buffer overflowed): enumerating again");
    apply(devices::Snapshot{devices_.enumerate()});
  }
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
    apply(devices::Upsert{kernel, true});
  }
}

void DeviceMonitor::on_probe_results() {
  for (ProbeWorker::Result& result : worker_.collect())
    apply(devices::Identified{result.name, std::move(result.identity), result.token});
}

}  // namespace diskgate::daemon
