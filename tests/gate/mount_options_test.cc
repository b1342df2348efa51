#include "gate/mount_options.h"

#include <sys/mount.h>

#include <catch2/catch.hpp>

namespace diskgate::gate {
namespace {

MountOptions ok(std::string_view text) {
  auto result = parse_mount_options(text);
  if (auto* error = std::get_if<MountOptionsError>(&result)) FAIL("unexpected error: " << error->message);
  return std::get<MountOptions>(result);
}

std::string error_of(std::string_view text) {
  auto result = parse_mount_options(text);
  if (std::holds_alternative<MountOptions>(result)) FAIL("'" << text << "' was accepted");
  return std::get<MountOptionsError>(result).message;
}

TEST_CASE("no options give no flags and no data") {
  CHECK(ok("") == MountOptions{});
}

TEST_CASE("each flag word sets its flag alone") {
  struct Case {
    const char* word;
    unsigned long flags;
  };
  const Case cases[] = {
      {"ro", MS_RDONLY},           {"noatime", MS_NOATIME},   {"relatime", MS_RELATIME},
      {"strictatime", MS_STRICTATIME}, {"nodiratime", MS_NODIRATIME}, {"nodev", MS_NODEV},
      {"nosuid", MS_NOSUID},       {"noexec", MS_NOEXEC},     {"sync", MS_SYNCHRONOUS},
      {"dirsync", MS_DIRSYNC},     {"lazytime", MS_LAZYTIME}, {"nosymfollow", MS_NOSYMFOLLOW},
      {"iversion", MS_I_VERSION},
  };
  for (const auto& c : cases) {
    INFO(c.word);
    CHECK(ok(c.word) == MountOptions{c.flags, ""});
  }
}

TEST_CASE("each negative word clears what its positive word set") {
  const std::pair<const char*, const char*> pairs[] = {
      {"ro", "rw"},         {"noatime", "atime"},         {"relatime", "norelatime"},
      {"nodiratime", "diratime"}, {"strictatime", "nostrictatime"}, {"nodev", "dev"},
      {"nosuid", "suid"},   {"noexec", "exec"},           {"sync", "async"},
      {"lazytime", "nolazytime"}, {"nosymfollow", "symfollow"}, {"iversion", "noiversion"},
  };
  for (const auto& [positive, negative] : pairs) {
    INFO(positive << " then " << negative);
    CHECK(ok(std::string(positive) + "," + negative) == MountOptions{});
    // And the other way round the positive word wins.
    CHECK(ok(std::string(negative) + "," + positive).flags != 0);
  }
}

TEST_CASE("negative words alone set nothing") {
  for (const char* word : {"rw", "atime", "norelatime", "diratime", "nostrictatime", "dev", "suid", "exec",
                           "async", "nolazytime", "symfollow", "noiversion", "defaults"}) {
    INFO(word);
    CHECK(ok(word) == MountOptions{});
  }
}

TEST_CASE("flags accumulate") {
  CHECK(ok("ro,nodev,nosuid,noexec,noatime").flags == (MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC | MS_NOATIME));
}

TEST_CASE("the last atime mode wins") {
  CHECK(ok("noatime,relatime").flags == MS_RELATIME);
  CHECK(ok("relatime,noatime").flags == MS_NOATIME);
  CHECK(ok("noatime,strictatime").flags == MS_STRICTATIME);
  CHECK(ok("strictatime,relatime").flags == MS_RELATIME);
  // nodiratime is independent of the mode.
  CHECK(ok("nodiratime,noatime,relatime").flags == (MS_NODIRATIME | MS_RELATIME));
  // atime only drops noatime, norelatime only relatime (as libmount).
  CHECK(ok("relatime,atime").flags == MS_RELATIME);
  CHECK(ok("noatime,norelatime").flags == MS_NOATIME);
}

TEST_CASE("later words override earlier ones") {
  CHECK(ok("ro,rw").flags == 0);
  CHECK(ok("rw,ro").flags == MS_RDONLY);
  CHECK(ok("ro,rw,ro").flags == MS_RDONLY);
  CHECK(ok("nodev,dev,nosuid").flags == MS_NOSUID);
}

TEST_CASE("defaults changes nothing, as in libmount") {
  // mount -o ro,defaults mounts read-only with util-linux 2.38.1.
  CHECK(ok("ro,defaults").flags == MS_RDONLY);
  CHECK(ok("defaults,ro").flags == MS_RDONLY);
  CHECK(ok("defaults,noexec,defaults").flags == MS_NOEXEC);
}

TEST_CASE("other options go to data in their order") {
  auto options = ok("compress=zstd,ro,degraded,noatime,subvol=x,space_cache=v2");
  CHECK(options.flags == (MS_RDONLY | MS_NOATIME));
  CHECK(options.data == "compress=zstd,degraded,subvol=x,space_cache=v2");
  CHECK(ok("degraded").data == "degraded");
  CHECK(ok("subvol=a,subvol=b").data == "subvol=a,subvol=b");  // repeats are the filesystem's business
}

TEST_CASE("flag words are exact and case sensitive") {
  CHECK(ok("RO") == MountOptions{0, "RO"});
  CHECK(ok("ro=1") == MountOptions{0, "ro=1"});
  CHECK(ok("noatimes") == MountOptions{0, "noatimes"});
}

TEST_CASE("commas inside double quotes do not split") {
  auto options = ok("ro,context=\"system_u:object_r:tmp_t:s0:c127,c456\",noexec");
  CHECK(options.flags == (MS_RDONLY | MS_NOEXEC));
  CHECK(options.data == "context=\"system_u:object_r:tmp_t:s0:c127,c456\"");
}

TEST_CASE("an unbalanced quote is an error") {
  CHECK_THAT(error_of("ro,context=\"a,b"), Catch::Contains("quote"));
}

TEST_CASE("empty items are errors") {
  CHECK_THAT(error_of(","), Catch::Contains("empty"));
  CHECK_THAT(error_of("ro,"), Catch::Contains("empty") && Catch::Contains("item 2"));
  CHECK_THAT(error_of(",ro"), Catch::Contains("item 1"));
  CHECK_THAT(error_of("ro,,noatime"), Catch::Contains("item 2"));
}

TEST_CASE("white space around an item is an error naming it") {
  CHECK_THAT(error_of("ro, noatime"), Catch::Contains("' noatime'"));
  CHECK_THAT(error_of("compress=zstd\t"), Catch::Contains("compress=zstd"));
}

TEST_CASE("a NUL byte is an error") {
  using namespace std::literals;
  CHECK_THAT(error_of("ro,\0noexec"sv), Catch::Contains("NUL"));
}

TEST_CASE("options that change the kind of mount are errors naming them") {
  for (const char* word : {"remount", "bind", "rbind", "move", "shared", "private", "slave", "unbindable",
                           "rshared", "make-private"}) {
    INFO(word);
    std::string message = error_of(std::string("ro,") + word);
    CHECK_THAT(message, Catch::Contains("'" + std::string(word) + "'"));
    CHECK_THAT(message, Catch::Contains("not allowed"));
  }
}

TEST_CASE("fstab-only options are errors naming them") {
  for (const char* word : {"user", "users", "owner", "noauto", "auto", "nouser", "group", "nofail", "_netdev",
                           "loop", "x-systemd.automount", "comment=systemd.x", "loop=/dev/loop3"}) {
    INFO(word);
    std::string message = error_of(std::string(word) + ",noatime");
    CHECK_THAT(message, Catch::Contains("'" + std::string(word) + "'"));
    CHECK_THAT(message, Catch::Contains("fstab"));
  }
}

TEST_CASE("user= with a value is filesystem data (cifs)") {
  CHECK(ok("user=backup").data == "user=backup");
}

TEST_CASE("join_data skips empty pieces") {
  CHECK(join_data({}) == "");
  CHECK(join_data({"", ""}) == "");
  CHECK(join_data({"compress=zstd"}) == "compress=zstd");
  CHECK(join_data({"", "a", "", "b=1", ""}) == "a,b=1");
  CHECK(join_data({"subvol=x", "degraded"}) == "subvol=x,degraded");
}

}  // namespace
}  // namespace diskgate::gate
