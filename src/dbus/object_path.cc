#include "dbus/object_path.h"

#include <fmt/format.h>

namespace diskgate::dbus {

namespace {
bool plain(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // device_object_path writes lower case only
}
}  // namespace

std::string device_object_path(std::string_view kernel_name) {
  std::string path = std::string(devices_path) + "/";
  if (kernel_name.empty()) return path + "_";
  for (char c : kernel_name) path += plain(c) ? std::string(1, c) : fmt::format("_{:02x}", static_cast<unsigned char>(c));
  return path;
}

std::optional<std::string> kernel_name_of(std::string_view path) {
  std::string_view prefix = devices_path;
  if (!path.starts_with(prefix) || path.size() < prefix.size() + 2 || path[prefix.size()] != '/') return std::nullopt;
  std::string_view encoded = path.substr(prefix.size() + 1);
  if (encoded == "_") return std::string();
  std::string name;
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (plain(encoded[i])) {
      name += encoded[i];
      continue;
    }
    if (encoded[i] != '_' || i + 2 >= encoded.size()) return std::nullopt;
    int high = hex_digit(encoded[i + 1]), low = hex_digit(encoded[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    char c = static_cast<char>(high * 16 + low);
    if (plain(c)) return std::nullopt;  // not how device_object_path writes it
    name += c;
    i += 2;
  }
  return name;
}

}  // namespace diskgate::dbus
