// Wires the device map to its inputs (uevents, inotify, probe results) and
// its outputs (log, D-Bus). Everything here runs on the one event loop.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "daemon/enumerator.h"
#include "daemon/event_loop.h"
#include "daemon/probe_worker.h"
#include "daemon/scan_queue.h"
#include "devices/device_map.h"

namespace diskgate::udev {
class BlockDevices;
class NodeWatcher;
}  // namespace diskgate::udev

namespace diskgate::dbus {
class Bus;
class MessageWriter;
class Service;
}  // namespace diskgate::dbus

namespace diskgate::daemon {

class DeviceMonitor {
 public:
  // `devices` is the chosen uevent source. In udev mode `kernel_devices`
  // listens to the kernel's own uevents too (null in kernel mode): the
  // kernel's word on a removal is final and reaches the map at once, even
  // when udevd is stopped, stuck or slow. `watcher` may be null; it notices
  // a device rewritten in place (mkfs, relabel) when no udevd tells us: in
  // kernel mode always, in udev mode while udevd does not answer.
  DeviceMonitor(EventLoop& loop, udev::BlockDevices& devices, udev::BlockDevices* kernel_devices,
                udev::NodeWatcher* watcher, ProbeWorker& worker);
  ~DeviceMonitor();

  // How long udevd may take to pass on a kernel uevent before we say it is
  // not answering and follow the kernel alone.
  static constexpr std::chrono::seconds udevd_patience{3};
  // Enumerations start at most this often, whoever asks.
  static constexpr std::chrono::milliseconds min_scan_interval{250};

  // Publishes the map on `bus` (which owns org.diskgate1); `other_objects`
  // writes GetManagedObjects' entries for the objects beside the devices.
  void attach_bus(dbus::Bus& bus, std::function<void(dbus::MessageWriter&)> other_objects = {});
  // Drops the bus objects (the connection was lost); never throws.
  void detach_bus() noexcept;
  // Enumerates (on the loop: before READY) and starts listening.
  void start();
  // Enumerates again and probes every device anew (SIGHUP, Rescan()), off
  // the loop: returns at once; requests made while one runs share one more.
  // `done` (if any) is called once that enumeration has been applied.
  void rescan(std::function<void()> done = {});
  const devices::DeviceMap& map() const { return map_; }
  // Called after every change the map reports (the gate listens here).
  void on_changes(std::function<void(const std::vector<devices::Change>&)> listener) {
    listener_ = std::move(listener);
  }

 private:
  // `written`: the node of the device the event is about, when it may have
  // been written to; other devices' probes (its disk, its partitions) flush
  // it first (ProbeWorker::submit).
  void apply(const devices::Event& event, const std::string& written = {});
  void log_change(const devices::Change& change) const;
  void on_uevents(udev::BlockDevices& source);
  void on_written_nodes();
  void on_probe_results();
  void schedule_trim();
  // Enumeration off the loop (ScanQueue decides; Enumerator runs it).
  void request_scan(bool lost_events, std::function<void()> done = {});
  void start_scan();
  void on_scan_done();
  void finish_scan(Enumerator::Outcome outcome);
  // udevd's liveness, from kernel uevents it should pass on.
  void expect_udevd(const std::string& name);
  void heard_udevd(const std::string& name);
  void check_udevd();
  void watch_nodes(bool on);
  void watch_node(const std::string& node);

  EventLoop& loop_;
  udev::BlockDevices& devices_;
  udev::BlockDevices* kernel_devices_;
  udev::NodeWatcher* watcher_;
  ProbeWorker& worker_;
  devices::DeviceMap map_;
  std::unique_ptr<dbus::Service> service_;
  std::function<void(const std::vector<devices::Change>&)> listener_;
  // The reason last logged for each unreadable device: logged once, not at
  // every re-probe.
  mutable std::map<std::string, std::string> unreadable_logged_;
  std::optional<gate::Loop::TimerId> trim_timer_;

  ScanQueue scans_;
  // Callers waiting for the running scan, and for the queued one.
  std::vector<std::function<void()>> running_waiters_, queued_waiters_;
  gate::Loop::Clock::time_point last_scan_started_{};
  std::optional<gate::Loop::TimerId> scan_timer_;
  Enumerator enumerator_;
  // Devices a uevent told of while the running enumeration ran: the event
  // is newer than (or as new as) what the enumeration saw of them.
  std::set<std::string> touched_;

  // Kernel uevents minus udevd's rebroadcasts, per device, and since when
  // the oldest is owed. udevd answers in milliseconds; one owed for
  // udevd_patience means it stopped.
  struct Owed {
    int count = 0;
    gate::Loop::Clock::time_point since;
  };
  std::map<std::string, Owed> owed_;
  std::optional<gate::Loop::TimerId> udevd_timer_;
  bool udevd_silent_ = false;
  bool watching_nodes_ = false;
};

}  // namespace diskgate::daemon
