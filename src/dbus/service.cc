#include "dbus/service.h"

#include <cstdlib>
#include <exception>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dbus/object_path.h"
#include "org.diskgate1.Device.adaptor.h"

namespace diskgate::dbus {

namespace {

constexpr const char* invalid_args = "org.freedesktop.DBus.Error.InvalidArgs";

std::string state_name(devices::Identity::State state) {
  switch (state) {
    case devices::Identity::State::unprobed: return "unprobed";
    case devices::Identity::State::identified: return "identified";
    case devices::Identity::State::unidentified: return "unidentified";
    case devices::Identity::State::unreadable: return "unreadable";
  }
  return "unknown";
}

// Validates a spec argument; a device path is canonicalised here, at the
// edge, so that /dev/disk/by-uuid/... symlinks name their device. Paths
// elsewhere are taken as written.
devices::Spec checked_spec(const std::string& text) {
  auto parsed = devices::parse_spec(text);
  if (auto* error = std::get_if<devices::SpecError>(&parsed)) throw sdbus::Error(invalid_args, error->message);
  auto spec = std::get<devices::Spec>(parsed);
  // Only under /dev (devtmpfs and udev's symlinks, which never block): a
  // caller's path on a hung FUSE or NFS mount would stall the event loop.
  if (spec.kind == devices::SpecKind::path && spec.value.starts_with("/dev/")) {
    if (char* real = ::realpath(spec.value.c_str(), nullptr)) {
      spec.value = real;
      std::free(real);
    }
  }
  return spec;
}

std::vector<std::string> nodes_of(const devices::Resolution& resolution) {
  std::vector<std::string> nodes;
  for (const devices::Device* device : resolution.devices) nodes.push_back(device->kernel.node);
  return nodes;
}

std::map<std::string, std::string> tag_map(const devices::Device& device) {
  std::map<std::string, std::string> tags;
  for (const probe::Tag& tag : device.identity.tags) tags.emplace(tag.name, tag.value);
  return tags;
}

}  // namespace

bool connection_open(const sdbus::IConnection& connection) noexcept {
  // sdbus-c++ 1.2 does not expose sd_bus_is_open(); sd_bus_get_events(),
  // asked here, fails with ENOTCONN once the bus is closed.
  try {
    connection.getEventLoopPollData();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void report_failures(const std::function<void()>& action) {
  try {
    action();
  } catch (const sdbus::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw sdbus::Error("org.freedesktop.DBus.Error.Failed", e.what());
  }
}

namespace {
// One "{sv}" entry of an a{sv} being written.
template <typename Value>
void entry(sdbus::Message& message, const char* key, const Value& value) {
  message.openDictEntry("sv");
  message << key;
  message.openVariant(sdbus::signature_of<Value>::str());
  message << value;
  message.closeVariant();
  message.closeDictEntry();
}
}  // namespace

void append_device(sdbus::Message& message, const devices::Device& device) {
  const devices::KernelDevice& k = device.kernel;
  const devices::Identity& id = device.identity;
  const probe::BtrfsMember* member = devices::btrfs_member(device);
  message.openContainer("{sv}");
  entry(message, "Name", k.name);
  entry(message, "Node", k.node);
  entry(message, "SysPath", k.syspath);
  entry(message, "Major", static_cast<std::uint32_t>(k.major));
  entry(message, "Minor", static_cast<std::uint32_t>(k.minor));
  entry(message, "Size", static_cast<std::uint64_t>(k.size_bytes));
  entry(message, "Parent", k.parent);
  entry(message, "Removable", k.removable);
  entry(message, "State", state_name(id.state));
  entry(message, "Error", id.error);
  entry(message, "Type", probe::tag_value(id.tags, "TYPE"));
  entry(message, "Uuid", probe::tag_value(id.tags, "UUID"));
  entry(message, "UuidSub", probe::tag_value(id.tags, "UUID_SUB"));
  entry(message, "Label", probe::tag_value(id.tags, "LABEL"));
  entry(message, "PartUuid", probe::tag_value(id.tags, "PARTUUID"));
  entry(message, "PartLabel", probe::tag_value(id.tags, "PARTLABEL"));
  entry(message, "Tags", tag_map(device));
  entry(message, "BtrfsDevid", static_cast<std::uint64_t>(member ? member->devid : 0));
  entry(message, "BtrfsDevices", static_cast<std::uint64_t>(member ? member->num_devices : 0));
  message.closeContainer();
}

Dict filesystem_dict(const devices::FilesystemView& view) {
  std::vector<std::string> conflicts;
  for (const devices::Conflict& conflict : view.conflicts)
    conflicts.push_back(fmt::format("{} claim the same member", fmt::join(conflict.nodes, ", ")));
  Dict dict;
  dict["uuid"] = view.uuid;
  dict["type"] = view.type;
  dict["label"] = view.label;
  dict["expected"] = static_cast<std::uint64_t>(view.expected);
  dict["present"] = static_cast<std::uint64_t>(view.present);
  dict["devices"] = view.devices;
  dict["missing_devids"] = view.missing_devids;
  dict["complete"] = view.complete;
  dict["conflicts"] = conflicts;
  dict["mount_data"] = view.mount_data;
  return dict;
}

// org.diskgate1.Manager, registered by hand rather than through the
// adaptor sdbus-c++-xml2cpp generates from dbus/org.diskgate1.Manager.xml
// (the contract; the daemon tests call every member): that adaptor takes
// a device as std::map<std::string, sdbus::Variant>, and every Variant is a
// D-Bus message of its own, 19 a device. ListDevices and the DeviceAdded
// and DeviceChanged signals write their a{sv} straight into the message.
class Service::Manager final : public sdbus::AdaptorInterfaces<sdbus::ObjectManager_adaptor> {
 public:
  static constexpr const char* interface = "org.diskgate1.Manager";

  Manager(sdbus::IConnection& connection, const devices::DeviceMap& map, Service::Rescan rescan)
      : AdaptorInterfaces(connection, manager_path), map_(map), rescan_(std::move(rescan)) {
    sdbus::IObject& object = getObject();
    object.registerMethod("Resolve").onInterface(interface).withInputParamNames("spec").withOutputParamNames("device")
        .implementedAs([this](const std::string& spec) { return Resolve(spec); });
    object.registerMethod("ResolveAll").onInterface(interface).withInputParamNames("spec")
        .withOutputParamNames("devices").implementedAs([this](const std::string& spec) { return ResolveAll(spec); });
    object.registerMethod(interface, "ListDevices", "", {}, "aa{sv}", {"devices"},
                          [this](sdbus::MethodCall call) { ListDevices(std::move(call)); });
    object.registerMethod("GetFilesystem").onInterface(interface).withInputParamNames("uuid")
        .withOutputParamNames("filesystem").implementedAs([this](const std::string& uuid) { return GetFilesystem(uuid); });
    object.registerMethod("Rescan").onInterface(interface)
        .implementedAs([this](sdbus::Result<>&& result) { Rescan(std::move(result)); });
    object.registerSignal(interface, "DeviceAdded", "a{sv}", {"device"});
    object.registerSignal(interface, "DeviceChanged", "a{sv}", {"device"});
    object.registerSignal("DeviceRemoved").onInterface(interface).withParameters<std::string>("device");
    object.registerSignal("FilesystemComplete").onInterface(interface).withParameters<std::string>("uuid");
    object.registerSignal("FilesystemIncomplete").onInterface(interface).withParameters<std::string>("uuid");
    registerAdaptor();
  }

  // DeviceAdded or DeviceChanged of `device`.
  void emit_device(const char* name, const devices::Device& device) {
    sdbus::Signal signal = getObject().createSignal(interface, name);
    append_device(signal, device);
    getObject().emitSignal(signal);
  }
  void emit(const char* name, const std::string& text) {
    getObject().emitSignal(name).onInterface(interface).withArguments(text);
  }
  ~Manager() noexcept {
    while (!pending_replies_.empty())
      answer(pending_replies_.begin()->first, "diskgated stopped serving the bus before the rescan ended");
    try {
      unregisterAdaptor();
    } catch (const std::exception&) {  // only frees slots; a dead bus is no reason to throw
    }
  }

 private:
  std::string Resolve(const std::string& spec) {
    auto resolution = map_.resolve(checked_spec(spec));
    if (resolution.devices.empty()) throw sdbus::Error(error_not_found, fmt::format("no device matches {}", spec));
    if (resolution.devices.size() > 1)
      throw sdbus::Error(error_ambiguous, fmt::format("{} matches {} devices ({}); use ResolveAll", spec,
                                                resolution.devices.size(), fmt::join(nodes_of(resolution), ", ")));
    return resolution.devices.front()->kernel.node;
  }
  std::vector<std::string> ResolveAll(const std::string& spec) {
    return nodes_of(map_.resolve(checked_spec(spec)));
  }
  void ListDevices(sdbus::MethodCall call) {
    report_failures([&] {
      sdbus::MethodReply reply = call.createReply();
      reply.openContainer("a{sv}");
      for (const devices::Device* device : map_.all()) append_device(reply, *device);
      reply.closeContainer();
      reply.send();
    });
  }
  Dict GetFilesystem(const std::string& uuid) {
    if (uuid.empty()) throw sdbus::Error(invalid_args, "GetFilesystem: the uuid is empty");
    auto view = map_.filesystem(uuid);
    if (!view) throw sdbus::Error(error_not_found, fmt::format("no filesystem has UUID {}", uuid));
    return filesystem_dict(*view);
  }
  void Rescan(sdbus::Result<>&& result) {
    // Answered when the scan is done, so a client calling in a loop waits
    // for each scan instead of flooding the loop with calls. The pending
    // reply stays here: it refers to the connection, and this object goes
    // before the connection does.
    std::uint64_t id = next_reply_++;
    pending_replies_.emplace(id, std::move(result));
    try {
      rescan_([this, id, alive = std::weak_ptr<int>(alive_)]() noexcept {
        if (!alive.expired()) answer(id, nullptr);
      });
    } catch (const std::exception& e) {
      answer(id, e.what());
    }
  }

  // Replies to a pending Rescan: done, or failed with `error`.
  void answer(std::uint64_t id, const char* error) noexcept {
    auto node = pending_replies_.extract(id);
    if (node.empty()) return;
    try {
      if (error)
        node.mapped().returnError(sdbus::Error("org.freedesktop.DBus.Error.Failed", error));
      else
        node.mapped().returnResults();
    } catch (const std::exception&) {  // the caller or the bus is gone
    }
  }

  const devices::DeviceMap& map_;
  Service::Rescan rescan_;
  std::map<std::uint64_t, sdbus::Result<>> pending_replies_;
  std::uint64_t next_reply_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // for callbacks that outlive us
};

class Service::DeviceObject final
    : public sdbus::AdaptorInterfaces<org::diskgate1::Device_adaptor, sdbus::ManagedObject_adaptor,
                                      sdbus::Properties_adaptor> {
 public:
  // Reads the device from the map when asked: an sdbus::Variant costs a
  // whole D-Bus message, so properties are made only on demand.
  DeviceObject(sdbus::IConnection& connection, const devices::DeviceMap& map, std::string name)
      : AdaptorInterfaces(connection, device_object_path(name)), map_(map), name_(std::move(name)) {
    registerAdaptor();
    emitInterfacesAddedSignal({org::diskgate1::Device_adaptor::INTERFACE_NAME});
  }
  // A lost bus makes the signal fail: nobody is there to hear it anyway.
  ~DeviceObject() noexcept {
    try {
      emitInterfacesRemovedSignal({org::diskgate1::Device_adaptor::INTERFACE_NAME});
    } catch (const std::exception&) {
    }
    try {
      unregisterAdaptor();
    } catch (const std::exception&) {
    }
  }
  void changed() { emitPropertiesChangedSignal(org::diskgate1::Device_adaptor::INTERFACE_NAME); }

 private:
  // The object exists exactly while the map has the device; the fallback is
  // only a guard.
  const devices::Device& device() const {
    static const devices::Device gone;
    const devices::Device* device = map_.find(name_);
    return device ? *device : gone;
  }
  std::string tag(std::string_view name) const { return probe::tag_value(device().identity.tags, name); }

  std::string Node() override { return device().kernel.node; }
  std::string Parent() override { return device().kernel.parent; }
  uint64_t Size() override { return device().kernel.size_bytes; }
  std::string State() override { return state_name(device().identity.state); }
  std::string Error() override { return device().identity.error; }
  std::string Type() override { return tag("TYPE"); }
  std::string Uuid() override { return tag("UUID"); }
  std::string Label() override { return tag("LABEL"); }
  std::map<std::string, std::string> Tags() override { return tag_map(device()); }
  uint64_t BtrfsDevid() override {
    const probe::BtrfsMember* member = devices::btrfs_member(device());
    return member ? member->devid : 0;
  }

  const devices::DeviceMap& map_;
  std::string name_;
};

Service::Service(sdbus::IConnection& connection, const devices::DeviceMap& map, Rescan rescan)
    : connection_(connection), map_(map), manager_(std::make_unique<Manager>(connection, map, std::move(rescan))) {
  for (const devices::Device* device : map_.all())
    objects_[device->kernel.name] = std::make_unique<DeviceObject>(connection_, map_, device->kernel.name);
}

Service::~Service() noexcept { drop(); }

void Service::drop() noexcept {
  objects_.clear();  // device objects first: they live under the manager's path
  manager_.reset();
}

void Service::refresh(const devices::Device& device) {
  // (No empty entry is left behind when creating the object throws.)
  if (auto it = objects_.find(device.kernel.name); it != objects_.end())
    it->second->changed();
  else
    objects_.emplace(device.kernel.name, std::make_unique<DeviceObject>(connection_, map_, device.kernel.name));
}

void Service::publish(const std::vector<devices::Change>& changes) {
  if (!manager_) return;
  if (!connection_open(connection_)) {
    drop();
    return;
  }
  std::exception_ptr first_failure;
  for (const devices::Change& change : changes) {
    try {
      publish_one(change);
    } catch (const std::exception&) {
      if (!first_failure) first_failure = std::current_exception();
    }
  }
  if (first_failure) std::rethrow_exception(first_failure);
}

void Service::publish_one(const devices::Change& change) {
  if (auto* added = std::get_if<devices::DeviceAdded>(&change)) {
    if (const devices::Device* device = map_.find(added->name)) {
      refresh(*device);
      manager_->emit_device("DeviceAdded", *device);
    }
  } else if (auto* changed = std::get_if<devices::DeviceChanged>(&change)) {
    if (const devices::Device* device = map_.find(changed->name)) {
      refresh(*device);
      manager_->emit_device("DeviceChanged", *device);
    }
  } else if (auto* removed = std::get_if<devices::DeviceRemoved>(&change)) {
    objects_.erase(removed->name);
    manager_->emit("DeviceRemoved", removed->node);
  } else if (auto* complete = std::get_if<devices::FilesystemComplete>(&change)) {
    manager_->emit("FilesystemComplete", complete->uuid);
  } else if (auto* incomplete = std::get_if<devices::FilesystemIncomplete>(&change)) {
    manager_->emit("FilesystemIncomplete", incomplete->uuid);
  }
}

}  // namespace diskgate::dbus
