#include <catch2/catch.hpp>

#include "os/users.h"

namespace diskgate::os {
namespace {

// Debian's files, with the lines a hand-edited system may have.
constexpr const char* passwd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    "broken:x:notanumber:100:broken:/:/bin/false\n"   // malformed: skipped
    "short:x:1200\n"                                   // malformed: skipped
    "# a comment:x:5:5:::\n"
    "\n"
    "+nis:x:7:7:::\n"                                  // NIS: skipped
    "backup:x:34:34:backup:/var/backups:/usr/sbin/nologin\n"
    "restic:x:1001:1002:Restic,,,:/home/restic:/bin/sh\r\n"  // CRLF
    "backup:x:999:999:second entry, never used:/:/bin/false\n"
    "big:x:4294967294:4294967294:::";                  // no final newline

constexpr const char* group =
    "root:x:0:\n"
    "backup:x:34:\n"
    "disk:x:6:restic\n"
    "broken:x:x6:\n"
    "restic:x:1002:\n"
    "nogroup:x:65534:\n";

Credentials ok(std::string_view spec) {
  auto result = resolve_user(spec, passwd, group);
  if (auto* error = std::get_if<std::string>(&result)) FAIL("unexpected error: " << *error);
  return std::get<Credentials>(result);
}

std::string error(std::string_view spec) {
  auto result = resolve_user(spec, passwd, group);
  if (auto* c = std::get_if<Credentials>(&result)) FAIL(spec << " resolved to " << c->uid << ":" << c->gid);
  return std::get<std::string>(result);
}

TEST_CASE("a user name gives its uid and primary gid") {
  CHECK(ok("backup") == Credentials{34, 34});
  CHECK(ok("restic") == Credentials{1001, 1002});
  CHECK(ok("nobody") == Credentials{65534, 65534});
  CHECK(ok("big") == Credentials{4294967294u, 4294967294u});
}

TEST_CASE("the first passwd line wins") {
  CHECK(ok("backup") == Credentials{34, 34});
}

TEST_CASE("USER:GROUP by names and ids") {
  CHECK(ok("restic:disk") == Credentials{1001, 6});
  CHECK(ok("restic:6") == Credentials{1001, 6});
  CHECK(ok("1001:disk") == Credentials{1001, 6});
  CHECK(ok("5000:5001") == Credentials{5000, 5001});  // neither listed: taken as given
  CHECK(ok("backup:4294967294") == Credentials{34, 4294967294u});
}

TEST_CASE("a numeric uid: gid from passwd when listed, else gid = uid") {
  CHECK(ok("1001") == Credentials{1001, 1002});
  CHECK(ok("34") == Credentials{34, 34});
  CHECK(ok("4242") == Credentials{4242, 4242});
  CHECK(ok("0042") == Credentials{42, 42});
}

TEST_CASE("root is allowed when asked for explicitly") {
  CHECK(ok("root") == Credentials{0, 0});
  CHECK(ok("0") == Credentials{0, 0});
  CHECK(ok("0:0") == Credentials{0, 0});
  CHECK(ok("backup:root") == Credentials{34, 0});
}

TEST_CASE("errors name the spec and the problem") {
  CHECK(error("nosuch") == "--user nosuch: no such user in /etc/passwd");
  CHECK(error("backup:nosuch") == "--user backup:nosuch: no such group nosuch in /etc/group");
  CHECK(error("") == "--user: empty, expected USER[:GROUP]");
  CHECK(error(":disk") == "--user :disk: no user before ':'");
  CHECK(error("backup:") == "--user backup:: no group after ':'");
  CHECK(error("a:b:c") == "--user a:b:c: more than one ':', expected USER[:GROUP]");
  CHECK(error("4294967295") == "--user 4294967295: user id 4294967295 is out of range (at most 4294967294)");
  CHECK(error("99999999999999999999999") ==
        "--user 99999999999999999999999: user id 99999999999999999999999 is out of range (at most 4294967294)");
  CHECK(error("backup:4294967295") ==
        "--user backup:4294967295: group id 4294967295 is out of range (at most 4294967294)");
  CHECK(error("-1") == "--user -1: '-1' is neither a user name nor a numeric id");
  CHECK_THAT(error("back up"), Catch::Contains("'back up' is neither a user name nor a numeric id"));
  CHECK_THAT(error("backup:-6"), Catch::Contains("'-6' is neither a group name nor a numeric id"));
  CHECK_THAT(error("+1"), Catch::Contains("neither a user name nor a numeric id"));
}

TEST_CASE("malformed lines are skipped, never matched") {
  CHECK(error("broken") == "--user broken: no such user in /etc/passwd");
  CHECK(error("short") == "--user short: no such user in /etc/passwd");
  CHECK(error("+nis") != "");
  CHECK(error("backup:broken") == "--user backup:broken: no such group broken in /etc/group");
  // A uid only on a malformed line: as if unlisted.
  CHECK(ok("1200") == Credentials{1200, 1200});
}

TEST_CASE("empty files: only numeric ids resolve") {
  CHECK(std::get<Credentials>(resolve_user("7:8", "", "")) == Credentials{7, 8});
  CHECK(std::get<Credentials>(resolve_user("7", "", "")) == Credentials{7, 7});
  CHECK(std::get<std::string>(resolve_user("backup", "", "")) == "--user backup: no such user in /etc/passwd");
}

}  // namespace
}  // namespace diskgate::os
