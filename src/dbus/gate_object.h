// /org/diskgate1/gate: the gate's status as properties, with
// PropertiesChanged, and its commands as methods.
#pragma once

#include <memory>

#include <sdbus-c++/sdbus-c++.h>

#include "dbus/object_path.h"
#include "gate/gate.h"

namespace diskgate::dbus {

class GateObject {
 public:
  // Registers the object and announces it (InterfacesAdded); throws
  // sdbus::Error when the bus fails meanwhile.
  GateObject(sdbus::IConnection& connection, gate::Gate& gate);
  // Announces the removal if the bus is still there; never throws.
  ~GateObject() noexcept;
  // Emits PropertiesChanged for every property that differs from the last
  // call. Never throws: the gate calls it and must not stop for the bus.
  void changed(const gate::Status& status) noexcept;

 private:
  class Adaptor;
  sdbus::IConnection& connection_;
  std::unique_ptr<Adaptor> adaptor_;
};

}  // namespace diskgate::dbus
