#include "dbus/gate_object.h"

#include "common/log.h"
#include "dbus/service.h"
#include "org.diskgate1.Gate.adaptor.h"

namespace diskgate::dbus {

class GateObject::Adaptor final
    : public sdbus::AdaptorInterfaces<org::diskgate1::Gate_adaptor, sdbus::ManagedObject_adaptor,
                                      sdbus::Properties_adaptor> {
 public:
  Adaptor(sdbus::IConnection& connection, gate::Gate& gate)
      : AdaptorInterfaces(connection, gate_path), gate_(gate), last_(gate.status()) {
    registerAdaptor();
    emitInterfacesAddedSignal({org::diskgate1::Gate_adaptor::INTERFACE_NAME});
  }
  // A lost bus makes the signal fail: nobody is there to hear it anyway.
  ~Adaptor() noexcept {
    try {
      emitInterfacesRemovedSignal({org::diskgate1::Gate_adaptor::INTERFACE_NAME});
    } catch (const std::exception&) {
    }
    try {
      unregisterAdaptor();
    } catch (const std::exception&) {
    }
  }

  void changed(const gate::Status& now) {
    std::vector<std::string> names;
    auto differs = [&](const char* name, auto member) {
      if (now.*member != last_.*member) names.emplace_back(name);
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
    if (!names.empty()) emitPropertiesChangedSignal(org::diskgate1::Gate_adaptor::INTERFACE_NAME, names);
  }

 private:
  const gate::Status& status() const { return gate_.status(); }
  std::string State() override { return std::string(gate::to_string(status().state)); }
  std::string Source() override { return gate_.config().source_text; }
  std::string Target() override { return gate_.config().target; }
  std::string FsType() override { return status().fstype; }
  std::string Device() override { return status().device; }
  uint64_t MembersPresent() override { return status().members_present; }
  uint64_t MembersExpected() override { return status().members_expected; }
  std::string MountData() override { return status().mount_data; }
  uint32_t ProgramPid() override { return static_cast<uint32_t>(status().program_pid); }
  uint32_t Restarts() override { return status().restarts; }
  std::string LastExitStatus() override { return status().last_exit_status; }
  std::string LastError() override { return status().last_error; }
  bool Degraded() override { return status().degraded; }
  uint64_t MountCalledUsec() override { return status().mount_called_usec; }
  uint64_t MountedAtUsec() override { return status().mounted_at_usec; }
  uint64_t StartedAtUsec() override { return status().started_at_usec; }
  void Start() override { report_failures([&] { gate_.start(); }); }
  void Stop() override { report_failures([&] { gate_.stop(); }); }
  void Restart() override { report_failures([&] { gate_.restart_program(); }); }
  void ReloadProgram() override { report_failures([&] { gate_.reload_program(); }); }

  gate::Gate& gate_;
  gate::Status last_;
};

GateObject::GateObject(sdbus::IConnection& connection, gate::Gate& gate)
    : connection_(connection), adaptor_(std::make_unique<Adaptor>(connection, gate)) {}
GateObject::~GateObject() noexcept = default;

void GateObject::changed(const gate::Status& status) noexcept {
  try {
    adaptor_->changed(status);
  } catch (const std::exception& e) {
    // A lost bus is logged (once) by daemon::BusLink, which then drops this object.
    if (connection_open(connection_))
      log(Level::warning, "D-Bus: could not announce the gate's new state: {}", e.what());
  }
}

}  // namespace diskgate::dbus
