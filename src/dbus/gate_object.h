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
  GateObject(sdbus::IConnection& connection, gate::Gate& gate);
  ~GateObject();
  // Emits PropertiesChanged for every property that differs from the last call.
  void changed(const gate::Status& status);

 private:
  class Adaptor;
  std::unique_ptr<Adaptor> adaptor_;
};

}  // namespace diskgate::dbus
