#include "cli/bus_commands.h"
#include "cli/bus_module.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <ostream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include "dbus/object_path.h"
#include "devices/spec.h"

namespace diskgate::cli {

namespace {

constexpr const char* service_name = dbus::bus_name;
using dbus::manager_path;
constexpr const char* manager_interface = "org.diskgate1.Manager";
constexpr std::string_view error_not_found = dbus::error_not_found;
constexpr std::string_view error_ambiguous = dbus::error_ambiguous;

using Dict = std::map<std::string, sdbus::Variant>;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Ends a command: its exit status and the text after "diskgatectl: ".
struct Failure {
  int status;
  std::string message;
};

// What a NotFound or Ambiguous reply means for the command at hand.
struct Subject {
  std::string not_found;
  std::string ambiguous;
};

// Text from the bus or from a disk, made safe for a terminal: control bytes
// become \xNN so a hostile label cannot move the cursor or forge a line.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '\\') out += "\\\\";
    else if (byte < 0x20 || byte == 0x7f) out += fmt::format("\\x{:02x}", byte);
    else out += c;
  }
  return out;
}

// A table cell or a space-separated field: "-" for "not known".
std::string cell(std::string_view text) { return text.empty() ? "-" : printable(text); }

// nlohmann::json throws on invalid UTF-8; D-Bus strings are valid UTF-8,
// but a replacement character beats aborting if one ever is not.
std::string dump(const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json to_json(const Dict& dict);

// Every type the daemon's dictionaries use, plus the other basic ones;
// null for anything else rather than failing the whole command.
Json to_json(const sdbus::Variant& value) {
  const std::string type = value.peekValueType();
  if (type == "s") return value.get<std::string>();
  if (type == "o") return std::string(value.get<sdbus::ObjectPath>());
  if (type == "b") return value.get<bool>();
  if (type == "y") return value.get<std::uint8_t>();
  if (type == "n") return value.get<std::int16_t>();
  if (type == "q") return value.get<std::uint16_t>();
  if (type == "i") return value.get<std::int32_t>();
  if (type == "u") return value.get<std::uint32_t>();
  if (type == "x") return value.get<std::int64_t>();
  if (type == "t") return value.get<std::uint64_t>();
  if (type == "d") return value.get<double>();
  if (type == "as") return value.get<std::vector<std::string>>();
  if (type == "at") return value.get<std::vector<std::uint64_t>>();
  if (type == "au") return value.get<std::vector<std::uint32_t>>();
  if (type == "a{ss}") return value.get<std::map<std::string, std::string>>();
  if (type == "a{sv}") return to_json(value.get<Dict>());
  if (type == "v") return to_json(value.get<sdbus::Variant>());
  return nullptr;
}

Json to_json(const Dict& dict) {
  Json out = Json::object();
  for (const auto& [key, value] : dict) out[key] = to_json(value);
  return out;
}

template <typename T>
T field(const Dict& dict, const std::string& key, T fallback = {}) {
  auto it = dict.find(key);
  if (it == dict.end() || !it->second.containsValueOfType<T>()) return fallback;
  return it->second.template get<T>();
}

std::string text(const Dict& dict, const std::string& key) { return field<std::string>(dict, key); }

// Kernel names in the order people expect: sda2 before sda10.
bool natural_less(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t ei = i, ej = j;
      while (ei < a.size() && digit(a[ei])) ++ei;
      while (ej < b.size() && digit(b[ej])) ++ej;
      std::string_view na = a.substr(i, ei - i), nb = b.substr(j, ej - j);
      while (na.size() > 1 && na[0] == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb[0] == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ei, j = ej;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i, ++j;
    }
  }
  if (a.size() - i != b.size() - j) return a.size() - i < b.size() - j;
  return a < b;  // equal up to leading zeros: any fixed order
}

// One connection to the chosen bus and a proxy of the manager object. The
// connection is driven by hand (no sdbus-c++ thread): calls block in
// sd_bus_call, signals are dispatched by dispatch().
class Session {
 public:
  explicit Session(const std::string& bus) : where_(describe(bus)) {
    try {
      if (bus == "system") connection_ = sdbus::createSystemBusConnection();
      else if (bus == "session") connection_ = sdbus::createSessionBusConnection();
      else connection_ = sdbus::createSessionBusConnectionWithAddress(bus);
    } catch (const sdbus::Error& e) {
      throw Failure{exit_unreachable, fmt::format("cannot connect to the {} ({}), so diskgated is not running there",
                                                  where_, e.getMessage())};
    }
    manager_ = sdbus::createProxy(*connection_, service_name, manager_path);
  }

  sdbus::IProxy& manager() { return *manager_; }
  sdbus::IConnection& connection() { return *connection_; }

  // Turns an error reply into the line the user sees and an exit status.
  Failure failure(const sdbus::Error& e, const Subject& subject) const {
    const std::string& name = e.getName();
    if (name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner")
      return {exit_unreachable, fmt::format("diskgated is not running on the {} (nothing owns {})", where_, service_name)};
    if (name == "org.freedesktop.DBus.Error.NoReply" || name == "org.freedesktop.DBus.Error.Timeout" ||
        name == "org.freedesktop.DBus.Error.Disconnected")
      return {exit_unreachable, fmt::format("diskgated on the {} did not answer: {}", where_, printable(e.getMessage()))};
    if (name == error_not_found && !subject.not_found.empty()) return {exit_failure, subject.not_found};
    if (name == error_ambiguous && !subject.ambiguous.empty()) return {exit_failure, subject.ambiguous};
    if (name == "org.freedesktop.DBus.Error.InvalidArgs" || name == error_not_found || name == error_ambiguous)
      return {exit_failure, printable(e.getMessage())};
    return {exit_failure, fmt::format("diskgated failed: {}: {}", name, printable(e.getMessage()))};
  }

  // Runs whatever the connection has queued: signals received meanwhile,
  // including those read while a blocking call waited for its reply.
  void dispatch() {
    try {
      while (connection_->processPendingRequest()) {
      }
    } catch (const sdbus::Error& e) {
      throw Failure{exit_unreachable, fmt::format("lost the connection to the {}: {}", where_, e.getMessage())};
    }
  }

  // Sleeps in poll() until the bus, `extra_fd` or `deadline` wakes us; call
  // dispatch() first. Returns true when extra_fd became readable.
  bool sleep(std::optional<Clock::time_point> deadline, int extra_fd) {
    auto poll_data = connection_->getEventLoopPollData();
    int timeout_ms = poll_data.getPollTimeout();
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      left = std::max<decltype(left)>(left, 0);
      int capped = static_cast<int>(std::min<decltype(left)>(left, 1 << 30));
      timeout_ms = timeout_ms < 0 ? capped : std::min(timeout_ms, capped);
    }
    pollfd fds[2] = {{poll_data.fd, poll_data.events, 0}, {extra_fd, POLLIN, 0}};
    int r = ::poll(fds, extra_fd >= 0 ? 2 : 1, timeout_ms);
    if (r < 0 && errno != EINTR) throw Failure{exit_failure, fmt::format("poll: {}", std::strerror(errno))};
    return r > 0 && extra_fd >= 0 && (fds[1].revents & POLLIN);
  }

 private:
  static std::string describe(const std::string& bus) {
    if (bus == "system" || bus == "session") return bus + " bus";
    return "bus at " + bus;
  }

  std::string where_;
  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<sdbus::IProxy> manager_;
};

// Runs `body` against a session, mapping every failure to one stderr line.
int guarded(const BusOptions& options, std::ostream& err, const Subject& subject,
            const std::function<int(Session&)>& body) {
  std::optional<Session> session;
  try {
    session.emplace(options.bus);
    return body(*session);
  } catch (const Failure& f) {
    err << "diskgatectl: " << f.message << std::endl;
    return f.status;
  } catch (const sdbus::Error& e) {
    // Errors before a session exists come from connecting (handled above).
    Failure f = session ? session->failure(e, subject) : Failure{exit_unreachable, e.getMessage()};
    err << "diskgatectl: " << f.message << std::endl;
    return f.status;
  } catch (const std::exception& e) {
    err << "diskgatectl: " << e.what() << std::endl;
    return exit_failure;
  }
}

Subject spec_subject(const std::string& spec) {
  return {fmt::format("no device matches {}", printable(spec)),
          fmt::format("{} matches several devices; use `diskgatectl resolve-all` to list them", printable(spec))};
}

std::string resolve(Session& session, const std::string& spec) {
  std::string node;
  session.manager().callMethod("Resolve").onInterface(manager_interface).withArguments(spec).storeResultsTo(node);
  return node;
}

std::vector<std::string> resolve_all(Session& session, const std::string& spec) {
  std::vector<std::string> nodes;
  session.manager().callMethod("ResolveAll").onInterface(manager_interface).withArguments(spec).storeResultsTo(nodes);
  return nodes;
}

std::vector<Dict> list_devices(Session& session) {
  std::vector<Dict> devices;
  session.manager().callMethod("ListDevices").onInterface(manager_interface).storeResultsTo(devices);
  std::stable_sort(devices.begin(), devices.end(),
                   [](const Dict& a, const Dict& b) { return natural_less(text(a, "Name"), text(b, "Name")); });
  return devices;
}

Dict get_filesystem(Session& session, const std::string& uuid) {
  Dict fs;
  session.manager().callMethod("GetFilesystem").onInterface(manager_interface).withArguments(uuid).storeResultsTo(fs);
  return fs;
}

bool is_error(const sdbus::Error& e, std::string_view name) { return e.getName() == name; }

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << '\n';
  }
}

// "Name:   value", extra values on their own lines under the first.
void print_field(std::ostream& out, std::string_view name, const std::vector<std::string>& values) {
  constexpr std::size_t width = 16;
  std::string head = fmt::format("{}:", name);
  head.resize(std::max(width, head.size() + 1), ' ');
  if (values.empty()) {
    out << head << "-\n";
    return;
  }
  for (std::size_t i = 0; i < values.size(); ++i)
    out << (i == 0 ? head : std::string(head.size(), ' ')) << cell(values[i]) << '\n';
}

void print_filesystem(std::ostream& out, const std::string& uuid, const Dict& fs) {
  auto expected = field<std::uint64_t>(fs, "expected");
  auto present = field<std::uint64_t>(fs, "present");
  bool complete = field<bool>(fs, "complete");
  std::vector<std::string> missing;
  for (auto devid : field<std::vector<std::uint64_t>>(fs, "missing_devids")) missing.push_back(std::to_string(devid));
  std::string canonical = text(fs, "uuid");  // the daemon's spelling, when it says
  print_field(out, "UUID", {canonical.empty() ? uuid : canonical});
  print_field(out, "Type", {text(fs, "type")});
  print_field(out, "Label", {text(fs, "label")});
  print_field(out, "Complete", {fmt::format("{} ({} of {} devices present)", complete ? "yes" : "no", present, expected)});
  print_field(out, "Devices", field<std::vector<std::string>>(fs, "devices"));
  print_field(out, "Missing devids", missing);
  print_field(out, "Conflicts", field<std::vector<std::string>>(fs, "conflicts"));
  print_field(out, "Mount data", {text(fs, "mount_data")});
}

// `added NAME NODE TYPE UUID LABEL`: the label last, since it may hold spaces.
std::string device_line(std::string_view event, const Dict& device) {
  return fmt::format("{} {} {} {} {} {}", event, cell(text(device, "Name")), cell(text(device, "Node")),
                     cell(text(device, "Type")), cell(text(device, "Uuid")), cell(text(device, "Label")));
}

// The filesystem UUID a spec names by itself (UUID=... or a bare UUID), if any.
std::string spec_uuid(const std::string& spec) {
  auto parsed = devices::parse_spec(spec);
  if (auto* s = std::get_if<devices::Spec>(&parsed)) {
    if (s->kind == devices::SpecKind::uuid || s->kind == devices::SpecKind::bare_uuid) return s->value;
  }
  return {};
}

// Blocks SIGINT and SIGTERM and reads them from a descriptor instead, so
// the monitor's poll() sees them and it can end cleanly with status 0.
class TerminationSignals {
 public:
  TerminationSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set_, &old_) != 0 || (fd_ = signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
      throw Failure{exit_failure, fmt::format("signalfd: {}", std::strerror(errno))};
  }
  ~TerminationSignals() {
    // Consume what arrived, or unblocking would deliver it and kill us.
    signalfd_siginfo info;
    while (::read(fd_, &info, sizeof info) == sizeof info) {
    }
    ::close(fd_);
    sigprocmask(SIG_SETMASK, &old_, nullptr);
  }
  TerminationSignals(const TerminationSignals&) = delete;
  TerminationSignals& operator=(const TerminationSignals&) = delete;
  int fd() const { return fd_; }

 private:
  sigset_t set_{}, old_{};
  int fd_ = -1;
};

}  // namespace

int run_list(const BusOptions& options, std::ostream& out, std::ostream& err) {
  return guarded(options, err, {}, [&](Session& session) {
    auto devices = list_devices(session);
    if (options.json) {
      Json array = Json::array();
      for (const auto& device : devices) array.push_back(to_json(device));
      out << dump(array) << std::endl;
      return exit_ok;
    }
    std::vector<std::vector<std::string>> rows{{"NAME", "NODE", "TYPE", "LABEL", "UUID", "STATE"}};
    for (const auto& device : devices) {
      rows.push_back({cell(text(device, "Name")), cell(text(device, "Node")), cell(text(device, "Type")),
                      cell(text(device, "Label")), cell(text(device, "Uuid")), cell(text(device, "State"))});
    }
    print_table(out, rows);
    out.flush();
    return exit_ok;
  });
}

int run_resolve(const BusOptions& options, const std::string& spec, std::ostream& out, std::ostream& err) {
  return guarded(options, err, spec_subject(spec), [&](Session& session) {
    auto node = resolve(session, spec);
    if (options.json) out << dump(Json{{"spec", spec}, {"node", node}}) << std::endl;
    else out << printable(node) << std::endl;
    return exit_ok;
  });
}

int run_resolve_all(const BusOptions& options, const std::string& spec, std::ostream& out, std::ostream& err) {
  return guarded(options, err, spec_subject(spec), [&](Session& session) {
    auto nodes = resolve_all(session, spec);
    if (nodes.empty()) throw Failure{exit_failure, spec_subject(spec).not_found};
    if (options.json) {
      out << dump(Json(nodes)) << std::endl;
    } else {
      for (const auto& node : nodes) out << printable(node) << '\n';
      out.flush();
    }
    return exit_ok;
  });
}

int run_fs(const BusOptions& options, const std::string& uuid, std::ostream& out, std::ostream& err) {
  Subject subject{fmt::format("no filesystem has UUID {}", printable(uuid)), {}};
  return guarded(options, err, subject, [&](Session& session) {
    auto fs = get_filesystem(session, uuid);
    if (options.json) {
      out << dump(to_json(fs)) << std::endl;
    } else {
      print_filesystem(out, uuid, fs);
      out.flush();
    }
    return exit_ok;
  });
}

int run_wait(const BusOptions& options, const WaitOptions& wait, std::ostream& out, std::ostream& err) {
  std::optional<Clock::time_point> deadline;
  if (wait.timeout >= 0)
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait.timeout));
  const Subject subject = spec_subject(wait.spec);
  const std::string named_uuid = spec_uuid(wait.spec);

  return guarded(options, err, subject, [&](Session& session) {
    // Subscribe before the first look, so a device that appears between
    // the look and the subscription cannot be missed.
    bool dirty = false;
    auto& manager = session.manager();
    manager.uponSignal("DeviceAdded").onInterface(manager_interface).call([&dirty](const Dict&) { dirty = true; });
    manager.uponSignal("DeviceChanged").onInterface(manager_interface).call([&dirty](const Dict&) { dirty = true; });
    manager.uponSignal("FilesystemComplete").onInterface(manager_interface).call([&dirty](const std::string&) {
      dirty = true;
    });
    manager.finishRegistration();  // adds the match rules synchronously

    std::optional<Dict> last_fs;  // for the timeout message
    // One look at the daemon's state; the JSON result once the wait is over.
    auto check = [&]() -> std::optional<Json> {
      std::string node;
      bool several = false;  // the spec names several devices
      try {
        node = resolve(session, wait.spec);
      } catch (const sdbus::Error& e) {
        // Several devices can share one filesystem (btrfs members): with
        // --complete that is fine, see below.
        several = wait.complete && is_error(e, error_ambiguous);
        if (!several && !is_error(e, error_not_found)) throw;
      }
      if (!wait.complete) {
        if (node.empty()) return std::nullopt;
        return Json{{"spec", wait.spec}, {"node", node}};
      }
      std::string uuid;
      if (several || !node.empty()) {
        // The filesystem UUID of the device(s) the spec names.
        std::vector<std::string> nodes = several ? resolve_all(session, wait.spec) : std::vector<std::string>{node};
        std::set<std::string> uuids;
        for (const auto& device : list_devices(session)) {
          if (std::find(nodes.begin(), nodes.end(), text(device, "Node")) != nodes.end() &&
              !text(device, "Uuid").empty())
            uuids.insert(text(device, "Uuid"));
        }
        if (uuids.size() == 1) uuid = *uuids.begin();
        else if (uuids.size() > 1 && named_uuid.empty())
          throw Failure{exit_failure, fmt::format("{} matches devices of several filesystems; use `diskgatectl "
                                                  "resolve-all` to list them",
                                                  printable(wait.spec))};
      }
      // UUID=... names its filesystem even before any member is known.
      if (uuid.empty()) uuid = named_uuid;
      if (uuid.empty()) return std::nullopt;  // not probed yet, or no filesystem (yet)
      try {
        last_fs = get_filesystem(session, uuid);
      } catch (const sdbus::Error& e) {
        if (is_error(e, error_not_found)) return std::nullopt;
        throw;
      }
      if (!field<bool>(*last_fs, "complete")) return std::nullopt;
      return Json{{"spec", wait.spec}, {"node", node.empty() ? Json(nullptr) : Json(node)}, {"uuid", uuid},
                  {"filesystem", to_json(*last_fs)}};
    };

    auto done = [&](const Json& result) {
      if (options.json) {
        out << dump(result) << std::endl;
      } else if (wait.complete) {
        for (const auto& node : field<std::vector<std::string>>(*last_fs, "devices")) out << printable(node) << '\n';
        out.flush();
      } else {
        out << printable(result["node"].get<std::string>()) << std::endl;
      }
      return exit_ok;
    };

    if (auto result = check()) return done(*result);
    for (;;) {
      if (dirty) {
        dirty = false;
        if (auto result = check()) return done(*result);
      }
      session.dispatch();
      if (dirty) continue;
      if (deadline && Clock::now() >= *deadline) break;
      session.sleep(deadline, -1);
    }
    std::string what = wait.complete ? fmt::format("the filesystem of {} to be complete", printable(wait.spec))
                                     : printable(wait.spec);
    std::string state;
    if (last_fs) {
      state = fmt::format(" ({} of {} devices present)", field<std::uint64_t>(*last_fs, "present"),
                          field<std::uint64_t>(*last_fs, "expected"));
    }
    throw Failure{exit_failure, fmt::format("timed out after {:g} s waiting for {}{}", wait.timeout, what, state)};
  });
}

int run_monitor(const BusOptions& options, std::ostream& out, std::ostream& err) {
  std::optional<TerminationSignals> signals;
  try {
    signals.emplace();
  } catch (const Failure& f) {
    err << "diskgatectl: " << f.message << std::endl;
    return f.status;
  }
  return guarded(options, err, {}, [&](Session& session) {
    auto& manager = session.manager();
    auto device_event = [&](const char* event) {
      return [&out, &options, event](const Dict& device) {
        if (options.json) out << dump(Json{{"event", event}, {"device", to_json(device)}}) << std::endl;
        else out << device_line(event, device) << std::endl;
      };
    };
    auto string_event = [&](const char* event, const char* key) {
      return [&out, &options, event, key](const std::string& value) {
        if (options.json) out << dump(Json{{"event", event}, {key, value}}) << std::endl;
        else out << event << ' ' << cell(value) << std::endl;
      };
    };
    manager.uponSignal("DeviceAdded").onInterface(manager_interface).call(device_event("added"));
    manager.uponSignal("DeviceChanged").onInterface(manager_interface).call(device_event("changed"));
    manager.uponSignal("DeviceRemoved").onInterface(manager_interface).call(string_event("removed", "node"));
    manager.uponSignal("FilesystemComplete").onInterface(manager_interface).call(string_event("complete", "uuid"));
    manager.uponSignal("FilesystemIncomplete").onInterface(manager_interface).call(string_event("incomplete", "uuid"));
    manager.finishRegistration();

    // Nothing would ever be printed without the daemon: say so now. Every
    // sd-bus peer answers Peer.Ping, and the call activates the service
    // where activation is set up.
    manager.callMethod("Ping").onInterface("org.freedesktop.DBus.Peer").storeResultsTo();

    do {
      session.dispatch();
    } while (!session.sleep(std::nullopt, signals->fd()));
    return exit_ok;
  });
}

namespace {
using dbus::gate_path;
constexpr const char* gate_interface = "org.diskgate1.Gate";

// A daemon started without --source has no gate object.
Subject gate_subject() { return {"diskgated runs without a gate (start it with --source)", {}}; }

int gate_failure(Session& session, const sdbus::Error& e, std::ostream& err) {
  const std::string& name = e.getName();
  if (name == "org.freedesktop.DBus.Error.UnknownObject" || name == "org.freedesktop.DBus.Error.UnknownInterface" ||
      name == "org.freedesktop.DBus.Error.UnknownMethod") {
    err << "diskgatectl: " << gate_subject().not_found << std::endl;
    return exit_failure;
  }
  Failure f = session.failure(e, gate_subject());
  err << "diskgatectl: " << f.message << std::endl;
  return f.status;
}
}  // namespace

int run_status(const BusOptions& options, std::ostream& out, std::ostream& err) {
  return guarded(options, err, gate_subject(), [&](Session& session) {
    Dict properties;
    try {
      auto proxy = sdbus::createProxy(session.connection(), service_name, gate_path);
      proxy->callMethod("GetAll")
          .onInterface("org.freedesktop.DBus.Properties")
          .withArguments(std::string(gate_interface))
          .storeResultsTo(properties);
    } catch (const sdbus::Error& e) {
      return gate_failure(session, e, err);
    }
    if (options.json) {
      out << dump(to_json(properties)) << std::endl;
      return exit_ok;
    }
    auto number = [&](const char* key) { return field<std::uint64_t>(properties, key); };
    auto pid = field<std::uint32_t>(properties, "ProgramPid");
    std::string device = text(properties, "Device");
    if (!device.empty() && !text(properties, "FsType").empty()) device += " (" + text(properties, "FsType") + ")";
    out << fmt::format("State:       {}{}\n", text(properties, "State"),
                       field<bool>(properties, "Degraded") ? " (DEGRADED: members missing)" : "")
        << fmt::format("Source:      {}\n", cell(text(properties, "Source")))
        << fmt::format("Target:      {}\n", cell(text(properties, "Target")))
        << fmt::format("Device:      {}\n", cell(device))
        << fmt::format("Members:     {} of {}\n", number("MembersPresent"), number("MembersExpected"))
        << fmt::format("Mount data:  {}\n", cell(text(properties, "MountData")))
        << fmt::format("Program:     {}\n", pid ? fmt::format("running, pid {}", pid) : "not running")
        << fmt::format("Restarts:    {}\n", field<std::uint32_t>(properties, "Restarts"))
        << fmt::format("Last exit:   {}\n", cell(text(properties, "LastExitStatus")))
        << fmt::format("Last error:  {}\n", cell(text(properties, "LastError")));
    out.flush();
    return exit_ok;
  });
}

int run_gate_method(const BusOptions& options, const std::string& method, std::ostream& err) {
  return guarded(options, err, gate_subject(), [&](Session& session) {
    try {
      auto proxy = sdbus::createProxy(session.connection(), service_name, gate_path);
      proxy->callMethod(method).onInterface(gate_interface);
    } catch (const sdbus::Error& e) {
      return gate_failure(session, e, err);
    }
    return exit_ok;
  });
}

}  // namespace diskgate::cli

// The module's one export (cli/bus_module.h); everything else in it is hidden.
extern "C" __attribute__((visibility("default"))) const diskgate::cli::BusModule* diskgate_bus_module() {
  using namespace diskgate::cli;
  static const BusModule table{bus_module_abi, sizeof(BusModule), run_list,   run_resolve, run_resolve_all,
                               run_fs,         run_wait,           run_monitor, run_status, run_gate_method};
  return &table;
}
