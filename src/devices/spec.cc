#include "devices/spec.h"

#include <array>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace diskgate::devices {

namespace {

struct KeyName {
  std::string_view name;
  SpecKind kind;
};
constexpr std::array keys{
    KeyName{"UUID", SpecKind::uuid},         KeyName{"UUID_SUB", SpecKind::uuid_sub},
    KeyName{"LABEL", SpecKind::label},       KeyName{"PARTUUID", SpecKind::partuuid},
    KeyName{"PARTLABEL", SpecKind::partlabel},
};

// The spec as it can appear inside an error message: control bytes become
// escapes so a newline in the input cannot forge a log line.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (byte < 0x20 || byte == 0x7f) out += fmt::format("\\x{:02x}", byte);
    else out += c;
  }
  return out;
}

SpecError error(std::string_view text, std::string_view problem) {
  return SpecError{fmt::format("invalid device spec \"{}\": {}", printable(text), problem)};
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Hex digits with dashes exactly where `shape` has them ('x' = hex digit).
bool has_shape(std::string_view value, std::string_view shape) {
  if (value.size() != shape.size()) return false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == '-' ? value[i] != '-' : !is_hex(value[i])) return false;
  }
  return true;
}

bool is_bare_uuid(std::string_view value) {
  return has_shape(value, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx") ||  // ext, btrfs, GPT
         has_shape(value, "xxxx-xxxx") ||                             // FAT/exFAT serial
         has_shape(value, "xxxxxxxx-xx");                             // MBR PARTUUID
}

std::variant<Spec, SpecError> parse_path(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('/', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view part = text.substr(pos, end - pos);
    if (part == "..") return error(text, "\"..\" is not allowed in a device path");
    if (!part.empty() && part != ".") parts.push_back(part);
    pos = end + 1;
  }
  if (parts.empty() || parts[0] != "dev") return error(text, "a device path must be under /dev/");
  if (parts.size() < 2) return error(text, "the device path names no device");
  std::string clean;
  for (std::string_view part : parts) {
    clean += '/';
    clean += part;
  }
  return Spec{SpecKind::path, std::move(clean)};
}

std::variant<Spec, SpecError> parse_tag(std::string_view text, std::size_t equals) {
  std::string_view key = text.substr(0, equals);
  std::string_view value = text.substr(equals + 1);
  if (key.empty()) return error(text, "missing key before '='");

  const KeyName* found = nullptr;
  for (const KeyName& k : keys)
    if (k.name == key) found = &k;
  if (!found) {
    std::string upper;
    for (char c : key) upper += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    for (const KeyName& k : keys)
      if (k.name == upper)
        return error(text, fmt::format("unknown key \"{}\" (keys are upper case: {})", printable(key), k.name));
    return error(text, fmt::format("unknown key \"{}\" (expected UUID, UUID_SUB, LABEL, PARTUUID or PARTLABEL)",
                                   printable(key)));
  }

  if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
    // blkid's rule: from the first quote to the last of the same kind.
    char quote = value.front();
    if (value.size() < 2 || value.back() != quote)
      return error(text, fmt::format("unbalanced {} quote", quote == '"' ? "double" : "single"));
    value = value.substr(1, value.size() - 2);
  } else if (value.find_first_of("\"'") != std::string_view::npos) {
    return error(text, "unbalanced quote in the value (quote the whole value: KEY=\"...\")");
  }
  if (value.empty()) return error(text, fmt::format("empty {} value", found->name));
  return Spec{found->kind, std::string(value)};
}

}  // namespace

bool folds_case(SpecKind kind) {
  return kind == SpecKind::uuid || kind == SpecKind::uuid_sub || kind == SpecKind::partuuid ||
         kind == SpecKind::bare_uuid;
}

std::string fold_uuid(std::string_view value) {
  std::string out(value);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::variant<Spec, SpecError> parse_spec(std::string_view text) {
  if (text.empty()) return error(text, "empty spec");
  if (text.find('\0') != std::string_view::npos) return error(text, "contains a NUL byte");
  if (text.find_first_of("\n\r") != std::string_view::npos) return error(text, "contains a line break");

  if (text.front() == '/') return parse_path(text);
  if (std::size_t equals = text.find('='); equals != std::string_view::npos) return parse_tag(text, equals);
  if (is_bare_uuid(text)) return Spec{SpecKind::bare_uuid, std::string(text)};
  return error(text,
               "expected KEY=value (UUID, UUID_SUB, LABEL, PARTUUID, PARTLABEL), a UUID "
               "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, XXXX-XXXX or xxxxxxxx-NN) or a /dev/ path");
}

std::string to_string(const Spec& spec) {
  if (spec.kind == SpecKind::path || spec.kind == SpecKind::bare_uuid) return spec.value;
  std::string_view key;
  for (const KeyName& k : keys)
    if (k.kind == spec.kind) key = k.name;
  // Double quotes always parse back: the value runs to the last quote.
  bool quote = spec.value.find_first_of(" \t\"'") != std::string::npos;
  return quote ? fmt::format("{}=\"{}\"", key, spec.value) : fmt::format("{}={}", key, spec.value);
}

}  // namespace diskgate::devices
