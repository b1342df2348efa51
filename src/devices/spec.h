// What a user writes to name a device or filesystem: "UUID=…", "LABEL='…'",
// a bare UUID, or a /dev path. Parsing is pure; DeviceMap::resolve matches.
//
// Accepted forms:
//   UUID=v  UUID_SUB=v  LABEL=v  PARTUUID=v  PARTLABEL=v
//       Keys are upper case, as blkid's tag names. The value may be quoted
//       as blkid allows: UUID="v" or LABEL='v'. The quoted value runs from
//       the first quote to the last one (blkid's rule), with no escapes, so
//       any label can be written as LABEL="…". An unquoted value must not
//       contain a quote character (it would be an unbalanced quote).
//   a bare UUID, in one of the shapes blkid prints:
//       8-4-4-4-12 hex (ext, btrfs, GPT PARTUUID), XXXX-XXXX (FAT/exFAT
//       serial), xxxxxxxx-NN (MBR PARTUUID).
//       A bare value matches a device whose UUID *or* PARTUUID tag equals it:
//       the shapes overlap between the two (GPT PARTUUIDs look like
//       filesystem UUIDs), and a user who copied either from blkid's output
//       means that device. When both kinds match different devices the
//       result is ambiguous, which resolve reports.
//   /dev/...  a device node, matched exactly against the node after lexical
//       clean-up ("//" and "/./" collapse; ".." is refused). Symlinks such
//       as /dev/disk/by-uuid/... are not followed here (that needs I/O).
//
// UUID, UUID_SUB and PARTUUID values compare case-insensitively (ASCII):
// FAT serials are upper case, GPT GUIDs lower case, users type either.
// LABEL and PARTLABEL compare byte for byte.
#pragma once

#include <string>
#include <string_view>
#include <variant>

namespace diskgate::devices {

enum class SpecKind { uuid, uuid_sub, label, partuuid, partlabel, bare_uuid, path };

struct Spec {
  SpecKind kind = SpecKind::path;
  std::string value;  // unquoted; for a path, cleaned up
  bool operator==(const Spec&) const = default;
};

struct SpecError {
  std::string message;  // names the spec (escaped) and the problem
  bool operator==(const SpecError&) const = default;
};

std::variant<Spec, SpecError> parse_spec(std::string_view text);

// The spec written back in a form parse_spec accepts (quoted when needed).
std::string to_string(const Spec& spec);

// Whether values of this kind compare case-insensitively.
bool folds_case(SpecKind kind);

// ASCII lower case: the key under which UUID-like values are compared.
std::string fold_uuid(std::string_view value);

}  // namespace diskgate::devices
