// resolve_user: "USER[:GROUP]" to numeric credentials, from the text of
// /etc/passwd and /etc/group. Pure and without NSS (no getpwnam): the static
// gokrazy build has no NSS modules, and tests give their own files.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "os/platform.h"

namespace diskgate::os {

// USER and GROUP are names or decimal ids (all digits).
//  - USER alone: the user's primary group from passwd; a numeric uid that
//    passwd does not list gets gid = uid.
//  - A numeric USER or GROUP need not be listed; a name must be.
//  - 0 (root) is allowed when given explicitly, by name or by id: the caller
//    decides whether it wants it.
// Ids are below 4294967295 ((uid_t)-1, which means "unchanged" to setresuid).
// Malformed passwd and group lines are skipped; the first matching line
// wins, as getpwnam's. The error names the spec and the problem:
// "--user backup: no such user in /etc/passwd".
std::variant<Credentials, std::string> resolve_user(std::string_view spec, std::string_view passwd_text,
                                                    std::string_view group_text);

}  // namespace diskgate::os
