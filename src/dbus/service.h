// The D-Bus face of the device map: org.diskgate1.Manager on /org/diskgate1
// (with ObjectManager) and an org.diskgate1.Device object per device. A thin
// adaptor: it reads the map, turns changes into signals, and validates
// arguments with the pure parse_spec.
//
// The device objects are not registered one by one: one fallback vtable on
// /org/diskgate1/devices finds a path's device in the map when asked, and a
// node enumerator lists them, so a device costs the bus nothing but its
// signals (README, Design: a few hundred bytes a device in all).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dbus/bus.h"
#include "devices/device_map.h"

namespace diskgate::dbus {

// Writes a device as ListDevices() and the DeviceAdded/DeviceChanged
// signals give it, an a{sv}: the org.diskgate1.Device properties plus the
// kernel details and the btrfs numbers the objects leave out.
void append_device(MessageWriter& writer, const devices::Device& device);
// Writes GetFilesystem()'s a{sv}.
void append_filesystem(MessageWriter& writer, const devices::FilesystemView& view);

class Service {
 public:
  // Starts (or joins) a rescan and calls `done` once it has been applied.
  using Rescan = std::function<void(std::function<void()> done)>;
  // Writes the {oa{sa{sv}}} entries of GetManagedObjects for the objects
  // under /org/diskgate1 other than the devices (the gate).
  using OtherObjects = std::function<void(MessageWriter& writer)>;
  // Registers the objects on `bus` (which already owns the bus name)
  // and announces each device (InterfacesAdded). `rescan` runs when a
  // client calls Rescan(). Throws BusError when the bus fails meanwhile.
  Service(Bus& bus, const devices::DeviceMap& map, Rescan rescan, OtherObjects other_objects = {});
  // Answers pending Rescan calls and announces the objects' removal if the
  // bus is still there; never throws.
  ~Service() noexcept;
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Emits the signals for changes the map just returned. Once the bus is
  // closed (lost) it publishes nothing more: a new Service on a new
  // connection takes over (daemon::BusLink). Throws the first failure of a
  // live bus, after publishing the other changes.
  void publish(const std::vector<devices::Change>& changes);

 private:
  struct Calls;  // the sd-bus callbacks
  void publish_one(const devices::Change& change);
  void emit_device(const char* member, const devices::Device& device);
  void emit(const char* member, const std::string& text);
  // Replies to a pending Rescan: done, or failed with `error`.
  void answer_rescan(std::uint64_t id, const char* error) noexcept;

  Bus& bus_;
  const devices::DeviceMap& map_;
  Rescan rescan_;
  OtherObjects other_objects_;
  Slot manager_, object_manager_, managed_objects_, devices_, enumerator_;
  std::map<std::uint64_t, Message> pending_rescans_;
  std::uint64_t next_rescan_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // for callbacks that outlive us
};

}  // namespace diskgate::dbus
