// The D-Bus face of the device map: org.diskgate1.Manager on /org/diskgate1
// (with ObjectManager) and one org.diskgate1.Device object per device. A thin
// adaptor: it reads the map, turns changes into signals, and validates
// arguments with the pure parse_spec.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

#include "devices/device_map.h"

namespace diskgate::dbus {

using Dict = std::map<std::string, sdbus::Variant>;

// Runs a method handler's action. sdbus-c++ 1.x turns only sdbus::Error
// into an error reply; any other exception would unwind through sd-bus's C
// code and end the daemon, so it is rethrown as org.freedesktop.DBus.Error.Failed.
void report_failures(const std::function<void()>& action);

// Whether `connection` is still open: a lost bus cannot be used any more
// (every emission throws) and is replaced by a new connection.
bool connection_open(const sdbus::IConnection& connection) noexcept;

// Writes a device as ListDevices() and the DeviceAdded/DeviceChanged
// signals give it, an a{sv}: the org.diskgate1.Device properties plus the
// kernel details and the btrfs numbers the objects leave out.
void append_device(sdbus::Message& message, const devices::Device& device);
Dict filesystem_dict(const devices::FilesystemView& view);

class Service {
 public:
  // Registers the objects on `connection` (which already owns the bus name)
  // and announces each device (InterfacesAdded). `rescan` runs when a
  // client calls Rescan(). Throws sdbus::Error when the bus fails meanwhile.
  // Starts (or joins) a rescan and calls `done` once it has been applied.
  using Rescan = std::function<void(std::function<void()> done)>;
  Service(sdbus::IConnection& connection, const devices::DeviceMap& map, Rescan rescan);
  // Announces the objects' removal if the bus is still there; never throws.
  ~Service() noexcept;
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Emits the signals for changes the map just returned and adds or
  // removes device objects. Once the connection is closed (the bus was
  // lost) it drops every object, quietly, and publishes nothing more: a new
  // Service on a new connection takes over (daemon::BusLink). Throws the
  // first failure of a live connection, after publishing the other changes.
  void publish(const std::vector<devices::Change>& changes);

 private:
  void drop() noexcept;
  void publish_one(const devices::Change& change);
  class Manager;
  // Creates or updates the device's object.
  void refresh(const devices::Device& device);
  class DeviceObject;
  sdbus::IConnection& connection_;
  const devices::DeviceMap& map_;
  std::unique_ptr<Manager> manager_;
  std::map<std::string, std::unique_ptr<DeviceObject>> objects_;  // by kernel name
};

}  // namespace diskgate::dbus
