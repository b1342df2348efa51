#include "dbus/gate_object.h"

#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "common/log.h"
#include "dbus/object_path.h"

namespace diskgate::dbus {

namespace {
constexpr const char* gate_interface = "org.diskgate1.Gate";
}

struct GateObject::Calls {
  static gate::Gate& gate_of(void* userdata) { return static_cast<GateObject*>(userdata)->gate_; }

  static int property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply,
                      void* userdata, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      const gate::Gate& gate = gate_of(userdata);
      const gate::Status& status = gate.status();
      MessageWriter writer(reply);
      std::string_view name = property;
      if (name == "State") writer.append(std::string(gate::to_string(status.state)));
      else if (name == "Source") writer.append(gate.config().source_text);
      else if (name == "Target") writer.append(gate.config().target);
      else if (name == "FsType") writer.append(status.fstype);
      else if (name == "Device") writer.append(status.device);
      else if (name == "MembersPresent") writer.append(static_cast<std::uint64_t>(status.members_present));
      else if (name == "MembersExpected") writer.append(static_cast<std::uint64_t>(status.members_expected));
      else if (name == "MountData") writer.append(status.mount_data);
      else if (name == "ProgramPid") writer.append(static_cast<std::uint32_t>(status.program_pid));
      else if (name == "Restarts") writer.append(static_cast<std::uint32_t>(status.restarts));
      else if (name == "LastExitStatus") writer.append(status.last_exit_status);
      else if (name == "LastError") writer.append(status.last_error);
      else if (name == "Degraded") writer.append(status.degraded);
      else if (name == "MountCalledUsec") writer.append(static_cast<std::uint64_t>(status.mount_called_usec));
      else if (name == "MountedAtUsec") writer.append(static_cast<std::uint64_t>(status.mounted_at_usec));
      else if (name == "StartedAtUsec") writer.append(static_cast<std::uint64_t>(status.started_at_usec));
      else throw MethodError(error_invalid_args, fmt::format("no property {}", name));
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

  static const sd_bus_vtable vtable[];
};

namespace {

constexpr std::uint64_t anyone = SD_BUS_VTABLE_UNPRIVILEGED;  // the bus policy decides who may call
constexpr std::uint64_t emits_change = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
}  // namespace

#define GATE_PROPERTY(name, type) SD_BUS_PROPERTY(name, type, property, 0, emits_change)

// The interface as dbus/org.diskgate1.Gate.xml declares it.
const sd_bus_vtable GateObject::Calls::vtable[] = {
    SD_BUS_VTABLE_START(0),
    GATE_PROPERTY("State", "s"),
    GATE_PROPERTY("Source", "s"),
    GATE_PROPERTY("Target", "s"),
    GATE_PROPERTY("FsType", "s"),
    GATE_PROPERTY("Device", "s"),
    GATE_PROPERTY("MembersPresent", "t"),
    GATE_PROPERTY("MembersExpected", "t"),
    GATE_PROPERTY("MountData", "s"),
    GATE_PROPERTY("ProgramPid", "u"),
    GATE_PROPERTY("Restarts", "u"),
    GATE_PROPERTY("LastExitStatus", "s"),
    GATE_PROPERTY("LastError", "s"),
    GATE_PROPERTY("Degraded", "b"),
    GATE_PROPERTY("MountCalledUsec", "t"),
    GATE_PROPERTY("MountedAtUsec", "t"),
    GATE_PROPERTY("StartedAtUsec", "t"),
    SD_BUS_METHOD("Start", "", "", run<&gate::Gate::start>, anyone),
    SD_BUS_METHOD("Stop", "", "", run<&gate::Gate::stop>, anyone),
    SD_BUS_METHOD("Restart", "", "", run<&gate::Gate::restart_program>, anyone),
    SD_BUS_METHOD("ReloadProgram", "", "", run<&gate::Gate::reload_program>, anyone),
    SD_BUS_VTABLE_END};
#undef GATE_PROPERTY

GateObject::GateObject(Bus& bus, gate::Gate& gate) : bus_(bus), gate_(gate), last_(gate.status()) {
  sd_bus_slot* slot = nullptr;
  check(sd_bus_add_object_vtable(bus_.get(), &slot, gate_path, gate_interface, Calls::vtable, this),
        "registering the gate");
  slot_.reset(slot);
  check(sd_bus_emit_interfaces_added(bus_.get(), gate_path, gate_interface, nullptr), "announcing the gate");
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
