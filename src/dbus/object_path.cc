#include "dbus/object_path.h"

#include <fmt/format.h>

namespace diskgate::dbus {

std::string device_object_path(std::string_view kernel_name) {
  std::string path = std::string(manager_path) + "/devices/";
  if (kernel_name.empty()) return path + "_";
  for (char c : kernel_name) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    path += plain ? std::string(1, c) : fmt::format("_{:02x}", static_cast<unsigned char>(c));
  }
  return path;
}

}  // namespace diskgate::dbus
