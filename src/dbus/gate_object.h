// /org/diskgate1/gate: the gate's status as properties, with
// PropertiesChanged, and its commands as methods.
#pragma once

#include "dbus/bus.h"
#include "gate/gate.h"

namespace diskgate::dbus {

class GateObject {
 public:
  // Registers the object and announces it (InterfacesAdded); throws
  // BusError when the bus fails meanwhile.
  GateObject(Bus& bus, gate::Gate& gate);
  // Announces the removal if the bus is still there; never throws.
  ~GateObject() noexcept;
  GateObject(const GateObject&) = delete;
  GateObject& operator=(const GateObject&) = delete;
  // Emits PropertiesChanged for every property that differs from the last
  // call. Never throws: the gate calls it and must not stop for the bus.
  void changed(const gate::Status& status) noexcept;
  // Writes the object's {oa{sa{sv}}} entry of GetManagedObjects.
  void append_managed(MessageWriter& writer) const;

 private:
  struct Calls;  // the sd-bus callbacks
  void announce(const gate::Status& now);
  Bus& bus_;
  gate::Gate& gate_;
  gate::Status last_;
  Slot slot_;
};

}  // namespace diskgate::dbus
