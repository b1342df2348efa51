// The names diskgated owns on the bus (the daemon and diskgatectl share
// them), and the object paths of device objects: /org/diskgate1/devices/<name>, with every
// byte outside [A-Za-z0-9] written as _XX (hex), since kernel names such as
// "dm-0" hold characters an object path element may not.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace diskgate::dbus {

inline constexpr const char* bus_name = "org.diskgate1";
inline constexpr const char* manager_path = "/org/diskgate1";
inline constexpr const char* devices_path = "/org/diskgate1/devices";
inline constexpr const char* gate_path = "/org/diskgate1/gate";
inline constexpr const char* error_not_found = "org.diskgate1.Error.NotFound";
inline constexpr const char* error_ambiguous = "org.diskgate1.Error.Ambiguous";

std::string device_object_path(std::string_view kernel_name);
// The kernel name device_object_path() made `path` from; nullopt for any
// other path (a caller may ask for any path under devices_path).
std::optional<std::string> kernel_name_of(std::string_view path);

}  // namespace diskgate::dbus
