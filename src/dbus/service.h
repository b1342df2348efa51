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

// A device as ListDevices() and the DeviceAdded/DeviceChanged signals give
// it: the org.diskgate1.Device properties plus the kernel details and the
// btrfs numbers the objects leave out.
Dict device_dict(const devices::Device& device);
Dict filesystem_dict(const devices::FilesystemView& view);

class Service {
 public:
  // Registers the objects on `connection` (which already owns the bus name).
  // `rescan` runs when a client calls Rescan().
  Service(sdbus::IConnection& connection, const devices::DeviceMap& map, std::function<void()> rescan);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Emits the signals for changes the map just returned and adds or
  // removes device objects.
  void publish(const std::vector<devices::Change>& changes);

 private:
  class Manager;
  // Creates or updates the device's object; returns its properties.
  Dict refresh(const devices::Device& device);
  class DeviceObject;
  sdbus::IConnection& connection_;
  const devices::DeviceMap& map_;
  std::unique_ptr<Manager> manager_;
  std::map<std::string, std::unique_ptr<DeviceObject>> objects_;  // by kernel name
};

}  // namespace diskgate::dbus
