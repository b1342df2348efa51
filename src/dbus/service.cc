#include "dbus/service.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dbus/object_path.h"
#include "dbus/properties.h"

namespace diskgate::dbus {

namespace {

constexpr const char* manager_interface = "org.diskgate1.Manager";
constexpr const char* device_interface = "org.diskgate1.Device";

const char* state_name(devices::Identity::State state) {
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
  if (auto* error = std::get_if<devices::SpecError>(&parsed)) throw MethodError(error_invalid_args, error->message);
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

// The tags as an a{ss}, straight from the device's list (no map is built:
// GetManagedObjects writes this for every device). A name given twice
// keeps its first value.
void append_tags(MessageWriter& writer, const probe::Tags& tags) {
  writer.open('a', "{ss}");
  for (auto it = tags.begin(); it != tags.end(); ++it) {
    auto same_name = [&](const probe::Tag& earlier) { return earlier.name == it->name; };
    if (std::any_of(tags.begin(), it, same_name)) continue;
    writer.open('e', "ss");
    writer.append(it->name);
    writer.append(it->value);
    writer.close();
  }
  writer.close();
}

// A string argument of a call.
std::string read_string(sd_bus_message* call) {
  const char* text = nullptr;
  check(sd_bus_message_read_basic(call, 's', &text), "reading the call's argument");
  return text;
}

// A device's fields: the org.diskgate1.Device properties, and the a{sv} of
// ListDevices and the DeviceAdded/DeviceChanged signals.
using W = MessageWriter;
using D = devices::Device;
const std::string& tag(const D& d, std::string_view name) { return probe::tag_value(d.identity.tags, name); }
// A btrfs member's number; 0 for other devices.
std::uint64_t btrfs_number(const D& d, std::uint64_t probe::BtrfsMember::*number) {
  const probe::BtrfsMember* member = devices::btrfs_member(d);
  return member ? member->*number : 0;
}

const Property<devices::Device> device_properties[] = {
    {"Name", "s", [](W& w, const D& d) { w.append(d.kernel.name); }},
    {"Node", "s", [](W& w, const D& d) { w.append(d.kernel.node); }},
    {"SysPath", "s", [](W& w, const D& d) { w.append(d.kernel.syspath); }},
    {"Major", "u", [](W& w, const D& d) { w.append(static_cast<std::uint32_t>(d.kernel.major)); }},
    {"Minor", "u", [](W& w, const D& d) { w.append(static_cast<std::uint32_t>(d.kernel.minor)); }},
    {"Size", "t", [](W& w, const D& d) { w.append(static_cast<std::uint64_t>(d.kernel.size_bytes)); }},
    {"Parent", "s", [](W& w, const D& d) { w.append(d.kernel.parent); }},
    {"Removable", "b", [](W& w, const D& d) { w.append(d.kernel.removable); }},
    {"State", "s", [](W& w, const D& d) { w.append(state_name(d.identity.state)); }},
    {"Error", "s", [](W& w, const D& d) { w.append(d.identity.error); }},
    {"Type", "s", [](W& w, const D& d) { w.append(tag(d, "TYPE")); }},
    {"Uuid", "s", [](W& w, const D& d) { w.append(tag(d, "UUID")); }},
    {"UuidSub", "s", [](W& w, const D& d) { w.append(tag(d, "UUID_SUB")); }},
    {"Label", "s", [](W& w, const D& d) { w.append(tag(d, "LABEL")); }},
    {"PartUuid", "s", [](W& w, const D& d) { w.append(tag(d, "PARTUUID")); }},
    {"PartLabel", "s", [](W& w, const D& d) { w.append(tag(d, "PARTLABEL")); }},
    {"Tags", "a{ss}", [](W& w, const D& d) { append_tags(w, d.identity.tags); }},
    {"BtrfsDevid", "t", [](W& w, const D& d) { w.append(btrfs_number(d, &probe::BtrfsMember::devid)); }},
    {"BtrfsDevices", "t", [](W& w, const D& d) { w.append(btrfs_number(d, &probe::BtrfsMember::num_devices)); }},
};

}  // namespace

void append_device(MessageWriter& writer, const devices::Device& device) {
  append_properties(writer, device_properties, device);
}

void append_filesystem(MessageWriter& writer, const devices::FilesystemView& view) {
  std::vector<std::string> conflicts;
  for (const devices::Conflict& conflict : view.conflicts)
    conflicts.push_back(fmt::format("{} claim the same member", fmt::join(conflict.nodes, ", ")));
  writer.open('a', "{sv}");
  writer.entry("uuid", view.uuid);
  writer.entry("type", view.type);
  writer.entry("label", view.label);
  writer.entry("expected", static_cast<std::uint64_t>(view.expected));
  writer.entry("present", static_cast<std::uint64_t>(view.present));
  writer.entry("devices", view.devices);
  writer.entry("missing_devids", view.missing_devids);
  writer.entry("complete", view.complete);
  writer.entry("conflicts", conflicts);
  writer.entry("mount_data", view.mount_data);
  writer.close();
}

// sd-bus calls these with the Service (or, for a device's properties, the
// device its find callback returned) as userdata, on the event loop.
struct Service::Calls {
  static Service& of(void* userdata) { return *static_cast<Service*>(userdata); }

  static int resolve(sd_bus_message* call, void* userdata, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      std::string spec = read_string(call);
      auto resolution = of(userdata).map_.resolve(checked_spec(spec));
      if (resolution.devices.empty()) throw MethodError(error_not_found, fmt::format("no device matches {}", spec));
      if (resolution.devices.size() > 1)
        throw MethodError(error_ambiguous, fmt::format("{} matches {} devices ({}); use ResolveAll", spec,
                                                       resolution.devices.size(), fmt::join(nodes_of(resolution), ", ")));
      return sd_bus_reply_method_return(call, "s", resolution.devices.front()->kernel.node.c_str());
    });
  }

  static int resolve_all(sd_bus_message* call, void* userdata, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      auto nodes = nodes_of(of(userdata).map_.resolve(checked_spec(read_string(call))));
      return reply(call, [&](MessageWriter& writer) { writer.append(nodes); });
    });
  }

  static int list_devices(sd_bus_message* call, void* userdata, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      return reply(call, [&](MessageWriter& writer) {
        writer.open('a', "a{sv}");
        for (const devices::Device* device : of(userdata).map_.all()) append_device(writer, *device);
        writer.close();
      });
    });
  }

  // ObjectManager.GetManagedObjects on /org/diskgate1, written here rather
  // than by sd-bus, whose generic one asks the fallback vtable for each device's
  // properties one by one (1.5x the time of ListDevices at 4,096 devices).
  // As in GDBus, an object lists its own interfaces, not the standard ones.
  static int object_manager_call(sd_bus_message* call, void* userdata, sd_bus_error* error) noexcept {
    if (!sd_bus_message_is_method_call(call, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")) return 0;
    return answer_call(error, [&] {
      if (!std::string_view(sd_bus_message_get_signature(call, true)).empty())
        throw MethodError(error_invalid_args, "GetManagedObjects takes no arguments");
      Service& service = of(userdata);
      return reply(call, [&](MessageWriter& writer) {
        writer.open('a', "{oa{sa{sv}}}");
        for (const devices::Device* device : service.map_.all())
          append_managed_object(writer, device_object_path(device->kernel.name), device_interface, device_properties,
                                *device);
        if (service.other_objects_) service.other_objects_(writer);
        writer.close();
      });
    });
  }

  static int get_filesystem(sd_bus_message* call, void* userdata, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      std::string uuid = read_string(call);
      if (uuid.empty()) throw MethodError(error_invalid_args, "GetFilesystem: the uuid is empty");
      auto view = of(userdata).map_.filesystem(uuid);
      if (!view) throw MethodError(error_not_found, fmt::format("no filesystem has UUID {}", uuid));
      return reply(call, [&](MessageWriter& writer) { append_filesystem(writer, *view); });
    });
  }

  // Answered when the scan is done, so a client calling in a loop waits
  // for each scan instead of flooding the loop with calls.
  static int rescan(sd_bus_message* call, void* userdata, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      Service& service = of(userdata);
      std::uint64_t id = service.next_rescan_++;
      service.pending_rescans_.emplace(id, Message(sd_bus_message_ref(call)));
      try {
        service.rescan_([&service, id, alive = std::weak_ptr<int>(service.alive_)]() noexcept {
          if (!alive.expired()) service.answer_rescan(id, nullptr);
        });
      } catch (const std::exception& e) {
        service.answer_rescan(id, e.what());
      }
      return 1;  // replied to later
    });
  }

  // /org/diskgate1/devices/NAME is the device the map has under NAME.
  static int find_device(sd_bus*, const char* path, const char*, void* userdata, void** found,
                         sd_bus_error*) noexcept {
    auto name = kernel_name_of(path);
    const devices::Device* device = name ? of(userdata).map_.find(*name) : nullptr;
    if (!device) return 0;
    *found = const_cast<devices::Device*>(device);  // read only: the getters take it as const
    return 1;
  }

  static int enumerate_devices(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      auto all = of(userdata).map_.all();
      // sd-bus frees the list with free(): it is made with malloc.
      auto** paths = static_cast<char**>(std::calloc(all.size() + 1, sizeof(char*)));
      if (!paths) throw std::bad_alloc();
      for (std::size_t i = 0; i < all.size(); ++i) {
        paths[i] = ::strdup(device_object_path(all[i]->kernel.name).c_str());
        if (!paths[i]) {
          for (std::size_t j = 0; j < i; ++j) std::free(paths[j]);
          std::free(paths);
          throw std::bad_alloc();
        }
      }
      *nodes = paths;
      return 0;
    });
  }

  static int device_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply,
                             void* found, sd_bus_error* error) noexcept {
    return answer_call(error, [&] {
      MessageWriter writer(reply);
      append_property(writer, device_properties, property, *static_cast<const devices::Device*>(found));
      return 1;
    });
  }

  static const sd_bus_vtable manager_vtable[];
  static const sd_bus_vtable* device_vtable();  // made from device_properties

  template <typename Write>
  static int reply(sd_bus_message* call, Write&& write) {
    sd_bus_message* raw = nullptr;
    check(sd_bus_message_new_method_return(call, &raw), "creating a reply");
    Message message(raw);
    MessageWriter writer(raw);
    write(writer);
    return check(sd_bus_send(nullptr, raw, nullptr), "sending a reply");
  }
};

namespace {

constexpr std::uint64_t anyone = SD_BUS_VTABLE_UNPRIVILEGED;  // the bus policy decides who may call

// The interfaces as dbus/org.diskgate1.Manager.xml and Device.xml declare
// them (tests/dbus/introspection_test.sh compares).
}  // namespace

const sd_bus_vtable Service::Calls::manager_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("Resolve", "s", SD_BUS_PARAM(spec), "s", SD_BUS_PARAM(device),
                             resolve, anyone),
    SD_BUS_METHOD_WITH_NAMES("ResolveAll", "s", SD_BUS_PARAM(spec), "as", SD_BUS_PARAM(devices),
                             resolve_all, anyone),
    SD_BUS_METHOD_WITH_NAMES("ListDevices", "", "", "aa{sv}", SD_BUS_PARAM(devices),
                             list_devices, anyone),
    SD_BUS_METHOD_WITH_NAMES("GetFilesystem", "s", SD_BUS_PARAM(uuid), "a{sv}", SD_BUS_PARAM(filesystem),
                             get_filesystem, anyone),
    SD_BUS_METHOD("Rescan", "", "", rescan, anyone),
    SD_BUS_SIGNAL_WITH_NAMES("DeviceAdded", "a{sv}", SD_BUS_PARAM(device), 0),
    SD_BUS_SIGNAL_WITH_NAMES("DeviceChanged", "a{sv}", SD_BUS_PARAM(device), 0),
    SD_BUS_SIGNAL_WITH_NAMES("DeviceRemoved", "s", SD_BUS_PARAM(device), 0),
    SD_BUS_SIGNAL_WITH_NAMES("FilesystemComplete", "s", SD_BUS_PARAM(uuid), 0),
    SD_BUS_SIGNAL_WITH_NAMES("FilesystemIncomplete", "s", SD_BUS_PARAM(uuid), 0),
    SD_BUS_VTABLE_END};

const sd_bus_vtable* Service::Calls::device_vtable() {
  static const std::vector<sd_bus_vtable> vtable = [] {
    std::vector<sd_bus_vtable> entries = property_vtable(device_properties, device_property);
    entries.push_back(SD_BUS_VTABLE_END);
    return entries;
  }();
  return vtable.data();
}

Service::Service(Bus& bus, const devices::DeviceMap& map, Rescan rescan, OtherObjects other_objects)
    : bus_(bus), map_(map), rescan_(std::move(rescan)), other_objects_(std::move(other_objects)) {
  sd_bus_slot* slot = nullptr;
  check(sd_bus_add_object_vtable(bus_.get(), &slot, manager_path, manager_interface, Calls::manager_vtable, this),
        "registering the Manager");
  manager_.reset(slot);
  // The ObjectManager for its InterfacesAdded/Removed and introspection; the
  // callback, which sd-bus runs before its own handlers, for the call.
  check(sd_bus_add_object_manager(bus_.get(), &slot, manager_path), "registering the ObjectManager");
  object_manager_.reset(slot);
  check(sd_bus_add_object(bus_.get(), &slot, manager_path, Calls::object_manager_call, this),
        "registering the ObjectManager");
  managed_objects_.reset(slot);
  check(sd_bus_add_fallback_vtable(bus_.get(), &slot, devices_path, device_interface, Calls::device_vtable(),
                                   Calls::find_device, this),
        "registering the devices");
  devices_.reset(slot);
  check(sd_bus_add_node_enumerator(bus_.get(), &slot, devices_path, Calls::enumerate_devices, this),
        "registering the devices");
  enumerator_.reset(slot);
  for (const devices::Device* device : map_.all())
    check(sd_bus_emit_interfaces_added(bus_.get(), device_object_path(device->kernel.name).c_str(),
                                       device_interface, nullptr),
          "announcing a device");
}

Service::~Service() noexcept {
  while (!pending_rescans_.empty())
    answer_rescan(pending_rescans_.begin()->first, "diskgated stopped serving the bus before the rescan ended");
  if (!bus_.is_open()) return;  // nobody is there to hear it
  for (const devices::Device* device : map_.all())
    sd_bus_emit_interfaces_removed(bus_.get(), device_object_path(device->kernel.name).c_str(), device_interface,
                                   nullptr);
}

void Service::answer_rescan(std::uint64_t id, const char* error) noexcept {
  auto node = pending_rescans_.extract(id);
  if (node.empty()) return;
  // A failure means the caller or the bus is gone: nothing to do.
  if (error)
    sd_bus_reply_method_errorf(node.mapped().get(), error_failed, "%s", error);
  else
    sd_bus_reply_method_return(node.mapped().get(), "");
}

void Service::emit_device(const char* member, const devices::Device& device) {
  sd_bus_message* raw = nullptr;
  check(sd_bus_message_new_signal(bus_.get(), &raw, manager_path, manager_interface, member), "creating a signal");
  Message signal(raw);
  MessageWriter writer(raw);
  append_device(writer, device);
  check(sd_bus_send(bus_.get(), raw, nullptr), fmt::format("emitting {}", member));
}

void Service::emit(const char* member, const std::string& text) {
  check(sd_bus_emit_signal(bus_.get(), manager_path, manager_interface, member, "s", text.c_str()),
        fmt::format("emitting {}", member));
}

void Service::publish(const std::vector<devices::Change>& changes) {
  if (!bus_.is_open()) return;
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
  sd_bus* bus = bus_.get();
  if (auto* added = std::get_if<devices::DeviceAdded>(&change)) {
    if (const devices::Device* device = map_.find(added->name)) {
      check(sd_bus_emit_interfaces_added(bus, device_object_path(added->name).c_str(), device_interface, nullptr),
            "announcing a device");
      emit_device("DeviceAdded", *device);
    }
  } else if (auto* changed = std::get_if<devices::DeviceChanged>(&change)) {
    if (const devices::Device* device = map_.find(changed->name)) {
      // (No names: every property, as they all may have changed.)
      check(sd_bus_emit_properties_changed_strv(bus, device_object_path(changed->name).c_str(), device_interface,
                                                nullptr),
            "announcing a device's change");
      emit_device("DeviceChanged", *device);
    }
  } else if (auto* removed = std::get_if<devices::DeviceRemoved>(&change)) {
    check(sd_bus_emit_interfaces_removed(bus, device_object_path(removed->name).c_str(), device_interface, nullptr),
          "announcing a device's removal");
    emit("DeviceRemoved", removed->node);
  } else if (auto* complete = std::get_if<devices::FilesystemComplete>(&change)) {
    emit("FilesystemComplete", complete->uuid);
  } else if (auto* incomplete = std::get_if<devices::FilesystemIncomplete>(&change)) {
    emit("FilesystemIncomplete", incomplete->uuid);
  }
}

}  // namespace diskgate::dbus
