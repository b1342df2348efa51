// Wires the device map to its inputs (uevents, inotify, probe results) and
// its outputs (log, D-Bus). Everything here runs on the one event loop.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "daemon/event_loop.h"
#include "daemon/probe_worker.h"
#include "devices/device_map.h"

namespace sdbus {
class IConnection;
}

namespace diskgate::udev {
class BlockDevices;
class NodeWatcher;
}  // namespace diskgate::udev

namespace diskgate::dbus {
class Service;
}

namespace diskgate::daemon {

class DeviceMonitor {
 public:
  // `watcher` may be null; it is used when no udevd runs, to notice a
  // device rewritten in place (mkfs, relabel).
  DeviceMonitor(EventLoop& loop, udev::BlockDevices& devices, udev::NodeWatcher* watcher, ProbeWorker& worker);
  ~DeviceMonitor();

  // Publishes the map on `connection` (which owns org.diskgate1).
  void attach_bus(sdbus::IConnection& connection);
  // Enumerates and starts listening.
  void start();
  // Enumerates again and probes every device anew (SIGHUP, Rescan()).
  void rescan();
  const devices::DeviceMap& map() const { return map_; }
  // Called after every change the map reports (the gate listens here).
  void on_changes(std::function<void(const std::vector<devices::Change>&)> listener) {
    listener_ = std::move(listener);
  }

 private:
  void apply(const devices::Event& event);
  void log_change(const devices::Change& change) const;
  void on_uevents();
  void on_written_nodes();
  void on_probe_results();
  void schedule_trim();

  EventLoop& loop_;
  udev::BlockDevices& devices_;
  udev::NodeWatcher* watcher_;
  ProbeWorker& worker_;
  devices::DeviceMap map_;
  std::unique_ptr<dbus::Service> service_;
  std::function<void(const std::vector<devices::Change>&)> listener_;
  // The reason last logged for each unreadable device: logged once, not at
  // every re-probe.
  mutable std::map<std::string, std::string> unreadable_logged_;
  std::optional<gate::Loop::TimerId> trim_timer_;
};

}  // namespace diskgate::daemon
