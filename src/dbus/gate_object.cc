#include "dbus/gate_object.h"

#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "common/log.h"
#include "dbus/object_path.h"
#include "dbus/properties.h"

namespace diskgate::dbus {

namespace {

constexpr const char* gate_interface = "org.diskgate1.Gate";

using W = MessageWriter;
using G = gate::Gate;
std::uint64_t u64(auto n) { return static_cast<std::uint64_t>(n); }
std::uint32_t u32(auto n) { return static_cast<std::uint32_t>(n); }

// The interface's properties as dbus/org.diskgate1.Gate.xml declares them.
const Property<gate::Gate> gate_properties[] = {
    {"State", "s", [](W& w, const G& g) { w.append(std::string(gate::to_string(g.status().state))); }},
    {"Source", "s", [](W& w, const G& g) { w.append(g.config().source_text); }},
    {"Target", "s", [](W& w, const G& g) { w.append(g.config().target); }},
    {"FsType", "s", [](W& w, const G& g) { w.append(g.status().fstype); }},
    {"Device", "s", [](W& w, const G& g) { w.append(g.status().device); }},
    {"MembersPresent", "t", [](W& w, const G& g) { w.append(u64(g.status().members_present)); }},
    {"MembersExpected", "t", [](W& w, const G& g) { w.append(u64(g.status().members_expected)); }},
    {"MountData", "s", [](W& w, const G& g) { w.append(g.status().mount_data); }},
    {"ProgramPid", "u", [](W& w, const G& g) { w.append(u32(g.status().program_pid)); }},
    {"Restarts", "u", [](W& w, const G& g) { w.append(u32(g.status().restarts)); }},
    {"LastExitStatus", "s", [](W& w, const G& g) { w.append(g.status().last_exit_status); }},
    {"LastError", "s", [](W& w, const G& g) { w.append(g.status().last_error); }},
    {"Degraded", "b", [](W& w, const G& g) { w.append(g.status().degraded); }},
    {"MountCalledUsec", "t", [](W& w, const G& g) { w.append(u64(g.status().mount_called_usec)); }},
    {"MountedAtUsec", "t", [](W& w, const G& g) { w.append(u64(g.status().mounted_at_usec)); }},
    {"StartedAtUsec", "t", [](W& w, const G& g) { w.append(u64(g.status().started_at_usec)); }},
};

}  // namespace

struct GateObject::Calls {
  static gate::Gate& gate_of(void* userdata) { return static_cast<GateObject*>(userdata)->gate_; }

  static int property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply,
                      void* userdata, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      MessageWriter writer(reply);
      append_property(writer, gate_properties, property, gate_of(userdata));
      return 1;
    });
  }

  template <void (gate::Gate::*command)()>
  static int run(sd_bus_message* call, void* userdata, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      (gate_of(userdata).*command)();
      return sd_bus_reply_method_return(call, "");
    });
  }

  static const sd_bus_vtable* vtable() {
    static const std::vector<sd_bus_vtable> entries = [] {
      constexpr std::uint64_t anyone = SD_BUS_VTABLE_UNPRIVILEGED;  // the bus policy decides who may call
      std::vector<sd_bus_vtable> vtable = property_vtable(gate_properties, property);
      vtable.push_back(SD_BUS_METHOD("Start", "", "", run<&gate::Gate::start>, anyone));
      vtable.push_back(SD_BUS_METHOD("Stop", "", "", run<&gate::Gate::stop>, anyone));
      vtable.push_back(SD_BUS_METHOD("Restart", "", "", run<&gate::Gate::restart_program>, anyone));
      vtable.push_back(SD_BUS_METHOD("ReloadProgram", "", "", run<&gate::Gate::reload_program>, anyone));
      vtable.push_back(SD_BUS_VTABLE_END);
      return vtable;
    }();
    return entries.data();
  }
};

GateObject::GateObject(Bus& bus, gate::Gate& gate) : bus_(bus), gate_(gate), last_(gate.status()) {
  sd_bus_slot* slot = nullptr;
  check(sd_bus_add_object_vtable(bus_.get(), &slot, gate_path, gate_interface, Calls::vtable(), this),
        "registering the gate");
  slot_.reset(slot);
  check(sd_bus_emit_interfaces_added(bus_.get(), gate_path, gate_interface, nullptr), "announcing the gate");
}

void GateObject::append_managed(MessageWriter& writer) const {
  append_managed_object(writer, gate_path, gate_interface, gate_properties, gate_);
}

GateObject::~GateObject() noexcept {
  if (bus_.is_open()) sd_bus_emit_interfaces_removed(bus_.get(), gate_path, gate_interface, nullptr);
}

void GateObject::changed(const gate::Status& now) noexcept {
  try {
    announce(now);
  } catch (const std::exception& e) {
    // A lost bus is logged (once) by daemon::BusLink, which then drops this object.
    if (bus_.is_open()) log(Level::warning, "D-Bus: could not announce the gate's new state: {}", e.what());
  }
}

void GateObject::announce(const gate::Status& now) {
  std::vector<const char*> names;
  auto differs = [&](const char* name, auto member) {
    if (now.*member != last_.*member) names.push_back(name);
  };
  differs("State", &gate::Status::state);
  differs("FsType", &gate::Status::fstype);
  differs("Device", &gate::Status::device);
  differs("MembersPresent", &gate::Status::members_present);
  differs("MembersExpected", &gate::Status::members_expected);
  differs("MountData", &gate::Status::mount_data);
  differs("ProgramPid", &gate::Status::program_pid);
  differs("Restarts", &gate::Status::restarts);
  differs("LastExitStatus", &gate::Status::last_exit_status);
  differs("LastError", &gate::Status::last_error);
  differs("Degraded", &gate::Status::degraded);
  differs("MountCalledUsec", &gate::Status::mount_called_usec);
  differs("MountedAtUsec", &gate::Status::mounted_at_usec);
  differs("StartedAtUsec", &gate::Status::started_at_usec);
  last_ = now;
  if (names.empty()) return;
  names.push_back(nullptr);
  check(sd_bus_emit_properties_changed_strv(bus_.get(), gate_path, gate_interface, const_cast<char**>(names.data())),
        "PropertiesChanged");
}

}  // namespace diskgate::dbus
