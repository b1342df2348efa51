// An interface's properties as one table: its vtable, the answer to
// Properties.Get (sd-bus asks for one property at a time) and the a{sv}
// written for GetManagedObjects, ListDevices and the signals all come from
// it, so they cannot differ.
#pragma once

#include <cstring>
#include <cstddef>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dbus/bus.h"

namespace diskgate::dbus {

template <typename Object>
struct Property {
  const char* name;
  const char* signature;
  void (*write)(MessageWriter& writer, const Object& object);
};

// The a{sv} of every property in `table`.
template <typename Object, std::size_t N>
void append_properties(MessageWriter& writer, const Property<Object> (&table)[N], const Object& object) {
  writer.open('a', "{sv}");
  for (const Property<Object>& property : table) {
    writer.open('e', "sv");
    writer.append(property.name);
    writer.open('v', property.signature);
    property.write(writer, object);
    writer.close();
    writer.close();
  }
  writer.close();
}

// One {oa{sa{sv}}} entry of GetManagedObjects: the object at `path`, with
// `interface` and its properties.
template <typename Object, std::size_t N>
void append_managed_object(MessageWriter& writer, const std::string& path, const char* interface,
                           const Property<Object> (&table)[N], const Object& object) {
  writer.open('e', "oa{sa{sv}}");
  writer.append_object_path(path);
  writer.open('a', "{sa{sv}}");
  writer.open('e', "sa{sv}");
  writer.append(interface);
  append_properties(writer, table, object);
  writer.close();
  writer.close();
  writer.close();
}

// Writes the value of the property called `name` (a Get's reply); throws
// MethodError when the table has none.
template <typename Object, std::size_t N>
void append_property(MessageWriter& writer, const Property<Object> (&table)[N], const char* name,
                     const Object& object) {
  for (const Property<Object>& property : table) {
    if (std::strcmp(property.name, name) == 0) {
      property.write(writer, object);
      return;
    }
  }
  throw MethodError(error_invalid_args, fmt::format("no property {}", name));
}

// The vtable's start and one entry per property, each read by `getter` and
// announced by PropertiesChanged; the caller adds its methods and the end.
template <typename Object, std::size_t N>
std::vector<sd_bus_vtable> property_vtable(const Property<Object> (&table)[N],
                                           sd_bus_property_get_t getter) {
  std::vector<sd_bus_vtable> entries{SD_BUS_VTABLE_START(0)};
  for (const Property<Object>& property : table)
    entries.push_back(SD_BUS_PROPERTY(property.name, property.signature, getter, 0,
                                      SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE));
  return entries;
}

}  // namespace diskgate::dbus
