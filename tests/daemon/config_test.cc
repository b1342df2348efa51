#include "daemon/config.h"

#include <catch2/catch.hpp>
#include <map>

using namespace diskgate;
using daemon::ConfigError;
using daemon::DaemonConfig;

namespace {
using Env = std::map<std::string, std::string>;

std::variant<DaemonConfig, ConfigError> parse(std::vector<std::string> args, Env env = {}) {
  return daemon::parse_config(args, [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional(it->second);
  });
}

DaemonConfig ok(std::vector<std::string> args, Env env = {}) {
  auto result = parse(std::move(args), std::move(env));
  if (auto* error = std::get_if<ConfigError>(&result)) FAIL(error->message);
  return std::get<DaemonConfig>(result);
}

std::string error(std::vector<std::string> args, Env env = {}) {
  auto result = parse(std::move(args), std::move(env));
  REQUIRE(std::holds_alternative<ConfigError>(result));
  return std::get<ConfigError>(result).message;
}

const std::string uuid = "0a1b2c3d-0000-4000-8000-00000000abcd";
}  // namespace

TEST_CASE("config: without --source diskgated is only the resolver") {
  DaemonConfig config = ok({"--bus", "session", "--uevents", "kernel"});
  CHECK_FALSE(config.gate);
  CHECK(config.bus == "session");
  CHECK(config.bus_given);
  CHECK(config.uevents == "kernel");
  CHECK_FALSE(ok({}).bus_given);
}

TEST_CASE("config: the wrapper's environment gives the defaults, flags win") {
  Env env{{"MNT_SOURCE", "UUID=" + uuid}, {"MNT_TARGET", "/perm/restic"}, {"MNT_FSTYPE", "btrfs"},
          {"MNT_DATA", "compress=zstd"}};
  DaemonConfig config = ok({}, env);
  REQUIRE(config.gate);
  CHECK(config.gate->source_text == "UUID=" + uuid);
  CHECK(config.gate->target == "/perm/restic");
  CHECK(config.gate->fstype == "btrfs");
  CHECK(config.gate->data == "compress=zstd");
  CHECK(config.gate->argv == std::vector<std::string>{"rest-server"});
  CHECK(ok({"--target", "/srv/x"}, env).gate->target == "/srv/x");
}

TEST_CASE("config: what follows -- goes to the program unchanged") {
  Env env{{"MNT_SOURCE", "LABEL=backup"}, {"MNT_TARGET", "/srv/b/"}};
  // A gokrazy flags.txt with "--" on top: rest-server's own flags.
  auto config = ok({"--", "--path", "/srv/b", "--listen", ":8000", "--no-auth"}, env);
  CHECK(config.gate->argv == std::vector<std::string>{"rest-server", "--path", "/srv/b", "--listen", ":8000", "--no-auth"});
  CHECK(config.gate->target == "/srv/b");  // trailing slash dropped
  // A program named after --.
  CHECK(ok({"--", "rclone", "serve", "restic", "--", "x"}, env).gate->argv ==
        std::vector<std::string>{"rclone", "serve", "restic", "--", "x"});
  // With --exec everything after -- is an argument, even a first plain word.
  CHECK(ok({"--exec", "/bin/sh", "--", "-c", "exit 3"}, env).gate->argv ==
        std::vector<std::string>{"/bin/sh", "-c", "exit 3"});
  CHECK(ok({"--exec", "rclone", "--", "serve", "restic"}, env).gate->argv ==
        std::vector<std::string>{"rclone", "serve", "restic"});
}

TEST_CASE("config: gate options are parsed and checked") {
  auto config = ok({"--source", "LABEL=\"my disk\"", "--target", "/srv/b", "--options", "ro,noatime,compress=zstd",
                    "--restart", "on-failure", "--stop-timeout", "2.5", "--degraded-after", "30"});
  REQUIRE(config.gate);
  CHECK(config.gate->source.kind == devices::SpecKind::label);
  CHECK(config.gate->source.value == "my disk");
  CHECK(config.gate->options.data == "compress=zstd");
  CHECK(config.gate->options.flags != 0);
  CHECK(config.gate->restart == gate::RestartPolicy::on_failure);
  CHECK(config.gate->stop_timeout == std::chrono::milliseconds(2500));
  REQUIRE(config.gate->degraded_after);
  CHECK(*config.gate->degraded_after == std::chrono::seconds(30));
  CHECK_FALSE(ok({"--source", "LABEL=x", "--target", "/t"}).gate->degraded_after);
}

TEST_CASE("config: bad arguments are named in the error") {
  CHECK_THAT(error({"--source", "FOO=bar", "--target", "/t"}), Catch::Contains("--source") && Catch::Contains("FOO"));
  CHECK_THAT(error({"--source", "LABEL=x"}), Catch::Contains("--target"));
  CHECK_THAT(error({"--source", "LABEL=x", "--target", "relative"}), Catch::Contains("absolute"));
  CHECK_THAT(error({"--source", "LABEL=x", "--target", "/"}), Catch::Contains("root"));
  CHECK_THAT(error({"--source", "LABEL=x", "--target", "/t", "--stop-timeout", "soon"}),
             Catch::Contains("--stop-timeout soon"));
  CHECK_THAT(error({"--source", "LABEL=x", "--target", "/t", "--degraded-after", "-1"}),
             Catch::Contains("--degraded-after"));
  CHECK_THAT(error({"--source", "LABEL=x", "--target", "/t", "--options", "remount"}), Catch::Contains("remount"));
  CHECK_THAT(error({"--restart", "sometimes"}), Catch::Contains("--restart"));
  CHECK_THAT(error({"--target", "/t"}), Catch::Contains("--source"));
  CHECK_THAT(error({"--", "--path", "/x"}), Catch::Contains("--source"));
  CHECK_THAT(error({"--frobnicate"}), Catch::Contains("frobnicate"));
}

TEST_CASE("config: option syntax") {
  CHECK(ok({"--bus=unix:path=/run/x=y"}).bus == "unix:path=/run/x=y");
  CHECK(ok({"--no-bus"}).no_bus);
  CHECK_FALSE(ok({}).no_bus);
  CHECK(ok({"--log-level", "debug"}).log_level == "debug");
  CHECK_THAT(error({"--bus"}), Catch::Contains("--bus needs a value"));
  CHECK_THAT(error({"--bus", "a", "--bus", "b"}), Catch::Contains("--bus is given twice"));
  CHECK_THAT(error({"--no-bus=yes"}), Catch::Contains("--no-bus takes no value"));
  CHECK_THAT(error({"--uevents", "netlink"}), Catch::Contains("--uevents netlink") && Catch::Contains("kernel"));
  CHECK_THAT(error({"rest-server"}), Catch::Contains("unexpected argument rest-server"));
  CHECK_THAT(error({"-v"}), Catch::Contains("unknown option -v"));
}

TEST_CASE("config: --help is not an error") {
  auto config = ok({"--help"});
  CHECK(config.help);
  CHECK_THAT(config.help_text, Catch::Contains("--source") && Catch::Contains("{auto,udev,kernel}"));
  CHECK(ok({"--source", "LABEL=x", "-h"}).help);
}

TEST_CASE("find_program searches PATH, then /usr/local/bin and /user") {
  std::vector<std::string> asked;
  auto only = [&](std::string present) {
    return [&asked, present](const std::string& file) {
      asked.push_back(file);
      return file == present;
    };
  };
  CHECK(daemon::find_program("rest-server", "/usr/bin:/bin", only("/bin/rest-server")) == "/bin/rest-server");
  asked.clear();
  CHECK(daemon::find_program("rest-server", "/usr/bin", only("/user/rest-server")) == "/user/rest-server");
  CHECK(asked == std::vector<std::string>{"/usr/bin/rest-server", "/usr/local/bin/rest-server", "/user/rest-server"});
  CHECK_FALSE(daemon::find_program("rest-server", "", only("/nowhere")));
  CHECK(daemon::find_program("/opt/x", "/usr/bin", only("/opt/x")) == "/opt/x");
  CHECK_FALSE(daemon::find_program("./x", "/usr/bin", only("/usr/bin/x")));
}
