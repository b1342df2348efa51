// storm-client: the D-Bus clients (and one ioctl) of tests/storm/storm_test.sh.
//
//   storm-client watch  --bus ADDR --log FILE [--final FILE]
//   storm-client hammer --bus ADDR --stop FILE --id N [--seed S] [--timeout-ms T]
//   storm-client list   --bus ADDR
//   storm-client quiet  --bus ADDR [--seconds 2] [--max 60] [--nodes REGEX]
//   storm-client rescan --bus ADDR
//   storm-client loop-remove N
//   storm-client exfat-checksum PATH
//
// watch: subscribes to the Manager's signals, then asks ListDevices
// (asynchronously, on the same connection: the reply comes in the bus's
// order, after every signal the daemon sent before it, so signals before
// the reply are in the starting state and signals after it are not), and
// prints "READY devices=N" once it has the starting state. From then on it
// replays every DeviceAdded/DeviceChanged (the device's whole a{sv}, keyed
// by Node) and DeviceRemoved (the node) over that state and logs each
// signal as one JSON line to --log. On SIGUSR1 it asks ListDevices and
// GetManagedObjects again, the same way, and checks: the replayed map equals
// the final ListDevices (every device, every key); every DeviceAdded and
// DeviceChanged carried the same keys as ListDevices' entries; every device
// object of GetManagedObjects matches its ListDevices entry and there is one
// per device. Prints "RESULT ..." and exits 0 (all held) or 1. SIGTERM: exit 3.
// STORM_SELFTEST=drop-signal leaves out of the replay the last signal that
// changed the replayed map (the check must then fail: that is its test).
//
// hammer: until FILE exists, calls Resolve (specs taken from the devices
// the last ListDevices listed, and unknown ones), ListDevices and
// GetManagedObjects in random order. NotFound and Ambiguous are answers;
// any other error, a missing reply or a timeout (--timeout-ms, default
// 15000) is a failure. Prints "RESULT ..."; exits 1 on any failure.
//
// list: ListDevices as a JSON array of plain objects. quiet: returns once no
// Manager signal came for --seconds (exit 0), or after --max seconds (1);
// with --nodes, only device signals whose node matches REGEX count.
// rescan: Manager.Rescan. loop-remove: LOOP_CTL_REMOVE of /dev/loopN
// (retries EBUSY for 5 s). exfat-checksum: exit 0 when PATH's exFAT main
// boot region checksum holds, 1 when it does not, 2 when not exFAT.
#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
using Dict = std::map<std::string, sdbus::Variant>;
using Objects = std::map<sdbus::ObjectPath, std::map<std::string, Dict>>;

constexpr const char* manager_interface = "org.diskgate1.Manager";
constexpr const char* device_interface = "org.diskgate1.Device";

volatile sig_atomic_t final_requested = 0;
volatile sig_atomic_t terminated = 0;

struct Options {
  std::string command, bus, log, final_file, stop, nodes;
  int id = 0;
  unsigned seed = 1;
  int timeout_ms = 15000;
  double seconds = 2, max = 60;
  int loop = -1;
  std::string path;
};

json to_json(const sdbus::Variant& value) {
  std::string type = value.peekValueType();
  if (type == "s" || type == "o") return value.get<std::string>();
  if (type == "u") return value.get<std::uint32_t>();
  if (type == "t") return value.get<std::uint64_t>();
  if (type == "i") return value.get<std::int32_t>();
  if (type == "x") return value.get<std::int64_t>();
  if (type == "b") return value.get<bool>();
  if (type == "a{ss}") {
    json object = json::object();
    for (auto& [k, v] : value.get<std::map<std::string, std::string>>()) object[k] = v;
    return object;
  }
  if (type == "as") return value.get<std::vector<std::string>>();
  return "<" + type + ">";
}

json to_json(const Dict& dict) {
  json object = json::object();
  for (auto& [key, value] : dict) object[key] = to_json(value);
  return object;
}

std::unique_ptr<sdbus::IConnection> connect(const std::string& bus) {
  return sdbus::createSessionBusConnectionWithAddress(bus);
}

// Runs the connection's dispatch until `done()`, a signal flag or `deadline`.
template <typename Done>
void pump(sdbus::IConnection& connection, Done done, std::optional<Clock::time_point> deadline = {}) {
  while (!done()) {
    while (connection.processPendingRequest()) {
      if (done()) return;
    }
    if (done() || terminated) return;
    if (deadline && Clock::now() >= *deadline) return;
    auto data = connection.getEventLoopPollData();
    pollfd fds[1] = {{data.fd, data.events, 0}};
    int wait_ms = 50;
    if (data.timeout_usec != UINT64_MAX) {
      // sd-bus' timeout is absolute (CLOCK_MONOTONIC).
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      std::uint64_t now_usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000u + now.tv_nsec / 1000;
      std::uint64_t left_ms = data.timeout_usec > now_usec ? (data.timeout_usec - now_usec) / 1000 : 0;
      wait_ms = static_cast<int>(std::min<std::uint64_t>(left_ms, 50));
    }
    (void)::poll(fds, 1, wait_ms);
  }
}

// ---- watch ----

struct Replay {
  std::map<std::string, json> devices;  // by Node
  bool apply(const json& signal) {       // true when the map changed
    const std::string& member = signal["member"].get_ref<const std::string&>();
    if (member == "DeviceRemoved") return devices.erase(signal["node"].get<std::string>()) > 0;
    const json& device = signal["device"];
    std::string node = device.value("Node", "");
    auto it = devices.find(node);
    if (it != devices.end() && it->second == device) return false;
    devices[node] = device;
    return true;
  }
};

std::map<std::string, json> by_node(const std::vector<Dict>& list) {
  std::map<std::string, json> map;
  for (const Dict& d : list) {
    json j = to_json(d);
    map[j.value("Node", "")] = j;
  }
  return map;
}

std::set<std::string> keys_of(const json& object) {
  std::set<std::string> keys;
  for (auto& [k, v] : object.items()) keys.insert(k);
  return keys;
}

std::string join(const std::set<std::string>& set) {
  std::string out;
  for (auto& s : set) out += (out.empty() ? "" : ",") + s;
  return out;
}

// The Device object path for a kernel name (as dbus/object_path.cc makes it).
std::string object_path(const std::string& name) {
  std::string path = "/org/diskgate1/devices/";
  if (name.empty()) return path + "_";
  for (char c : name) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    char buf[8];
    std::snprintf(buf, sizeof buf, "_%02x", static_cast<unsigned char>(c));
    path += plain ? std::string(1, c) : std::string(buf);
  }
  return path;
}

int run_watch(const Options& options) {
  auto connection = connect(options.bus);
  auto proxy = sdbus::createProxy(*connection, "org.diskgate1", "/org/diskgate1");
  std::ofstream log(options.log);
  std::optional<std::map<std::string, json>> initial;
  std::vector<json> signals;  // device signals after the starting state
  std::map<std::string, long> counts;
  long before_start = 0;
  std::set<std::string> list_keys;
  int failures = 0;
  long seq = 0;

  auto slot = connection->addMatch(
      "type='signal',sender='org.diskgate1',path='/org/diskgate1',interface='org.diskgate1.Manager'",
      [&](sdbus::Message& message) {
        std::string member = message.getMemberName();
        json entry = {{"seq", seq++}, {"member", member}};
        if (member == "DeviceAdded" || member == "DeviceChanged") {
          Dict device;
          message >> device;
          entry["device"] = to_json(device);
        } else {
          std::string arg;
          message >> arg;
          entry[member == "DeviceRemoved" ? "node" : "uuid"] = arg;
        }
        if (!initial) {
          ++before_start;
          entry["before_start"] = true;
          log << entry.dump() << '\n';
          return;
        }
        ++counts[member];
        log << entry.dump() << '\n';
        if (member == "DeviceAdded" || member == "DeviceChanged" || member == "DeviceRemoved") {
          if (member != "DeviceRemoved") {
            auto keys = keys_of(entry["device"]);
            if (!list_keys.empty() && keys != list_keys) {
              ++failures;
              std::cout << "not ok - " << member << " for " << entry["device"].value("Node", "?")
                        << " carries keys {" << join(keys) << "}, ListDevices {" << join(list_keys) << "}\n";
            }
          }
          signals.push_back(std::move(entry));
        }
      });

  proxy->callMethodAsync("ListDevices").onInterface(manager_interface)
      .uponReplyInvoke([&](const sdbus::Error* error, const std::vector<Dict>& devices) {
        if (error) {
          std::cerr << "storm-client watch: ListDevices: " << error->getName() << ": " << error->getMessage() << "\n";
          std::exit(1);
        }
        initial = by_node(devices);
        if (!devices.empty()) list_keys = keys_of(initial->begin()->second);
      });
  pump(*connection, [&] { return initial.has_value(); });
  if (!initial) return 3;
  std::cout << "READY devices=" << initial->size() << std::endl;

  pump(*connection, [&] { return final_requested != 0; });
  if (!final_requested) return 3;

  // The final state: ListDevices, GetManagedObjects, ListDevices; each
  // reply in order with the signals. The replay is compared with the first.
  std::optional<std::map<std::string, json>> final1, final2;
  std::optional<Objects> objects;
  std::size_t signals_at_final1 = 0;
  int replies = 0;
  auto ask = [&] {
    final1.reset();
    final2.reset();
    objects.reset();
    replies = 0;
    proxy->callMethodAsync("ListDevices").onInterface(manager_interface)
        .uponReplyInvoke([&](const sdbus::Error* error, const std::vector<Dict>& devices) {
          ++replies;
          if (error) return;
          final1 = by_node(devices);
          signals_at_final1 = signals.size();
        });
    proxy->callMethodAsync("GetManagedObjects").onInterface("org.freedesktop.DBus.ObjectManager")
        .uponReplyInvoke([&](const sdbus::Error* error, const Objects& got) {
          ++replies;
          if (!error) objects = got;
        });
    proxy->callMethodAsync("ListDevices").onInterface(manager_interface)
        .uponReplyInvoke([&](const sdbus::Error* error, const std::vector<Dict>& devices) {
          ++replies;
          if (!error) final2 = by_node(devices);
        });
    pump(*connection, [&] { return replies == 3; }, Clock::now() + std::chrono::seconds(60));
  };
  ask();
  if (!final1 || !final2 || !objects) {
    std::cout << "not ok - final ListDevices/GetManagedObjects answered\n";
    return 1;
  }

  // The replay, up to the first final ListDevices.
  std::optional<std::size_t> dropped;
  auto replay = [&](std::optional<std::size_t> skip) {
    Replay r{*initial};
    std::optional<std::size_t> last_effective;
    for (std::size_t i = 0; i < signals_at_final1; ++i) {
      if (skip && *skip == i) continue;
      if (r.apply(signals[i])) last_effective = i;
    }
    return std::make_pair(r, last_effective);
  };
  auto [replayed, last_effective] = replay(std::nullopt);
  if (const char* selftest = std::getenv("STORM_SELFTEST");
      selftest && std::string(selftest) == "drop-signal" && last_effective) {
    dropped = last_effective;
    std::cout << "# STORM_SELFTEST=drop-signal: the replay leaves out signal " << signals[*dropped].dump() << "\n";
    replayed = replay(dropped).first;
  }
  int differences = 0;
  for (auto& [node, device] : *final1) {
    auto it = replayed.devices.find(node);
    if (it == replayed.devices.end()) {
      if (++differences <= 10) std::cout << "#   replay lacks " << node << ": ListDevices has " << device.dump() << "\n";
    } else if (it->second != device) {
      if (++differences <= 10)
        std::cout << "#   replay has " << node << " as " << it->second.dump() << "\n#   ListDevices has "
                  << device.dump() << "\n";
    }
  }
  for (auto& [node, device] : replayed.devices)
    if (!final1->contains(node) && ++differences <= 10)
      std::cout << "#   replay has " << node << " that ListDevices lacks: " << device.dump() << "\n";
  if (differences) {
    ++failures;
    std::cout << "not ok - signals replayed over the starting state give the final ListDevices (" << differences
              << " device(s) differ)\n";
  } else {
    std::cout << "ok - signals replayed over the starting state (" << initial->size() << " devices, "
              << signals_at_final1 << " device signals) give the final ListDevices (" << final1->size()
              << " devices)\n";
  }

  // The objects, against ListDevices (when nothing changed between).
  if (*final1 != *final2) {
    std::cout << "# the map changed during the final calls: objects not compared\n";
  } else {
    int bad = 0;
    std::set<std::string> paths;
    for (auto& [path, interfaces] : *objects) {
      auto it = interfaces.find(device_interface);
      if (it != interfaces.end()) paths.insert(path);
    }
    std::set<std::string> expected;
    for (auto& [node, device] : *final1) {
      std::string path = object_path(device.value("Name", ""));
      expected.insert(path);
      auto obj = objects->find(sdbus::ObjectPath(path));
      if (obj == objects->end() || !obj->second.contains(device_interface)) {
        if (++bad <= 10) std::cout << "#   no object " << path << " for " << node << "\n";
        continue;
      }
      json props = to_json(obj->second.at(device_interface));
      for (auto& [key, value] : props.items()) {
        if (!device.contains(key) || device[key] != value) {
          if (++bad <= 10)
            std::cout << "#   " << path << " " << key << " = " << value.dump() << ", ListDevices: "
                      << (device.contains(key) ? device[key].dump() : "(none)") << "\n";
        }
      }
    }
    for (auto& path : paths)
      if (!expected.contains(path) && ++bad <= 10) std::cout << "#   object " << path << " has no device\n";
    if (bad) {
      ++failures;
      std::cout << "not ok - GetManagedObjects' device objects match ListDevices (" << bad << " differences)\n";
    } else {
      std::cout << "ok - GetManagedObjects has one object per device (" << paths.size()
                << "), properties as ListDevices\n";
    }
  }
  if (!options.final_file.empty()) {
    json out = json::array();
    for (auto& [node, device] : *final1) out.push_back(device);
    std::ofstream(options.final_file) << out.dump() << '\n';
  }
  std::cout << "RESULT signals=" << seq << " before_start=" << before_start;
  for (const char* m : {"DeviceAdded", "DeviceChanged", "DeviceRemoved", "FilesystemComplete", "FilesystemIncomplete"})
    std::cout << " " << m << "=" << counts[m];
  std::cout << " replayed=" << signals_at_final1 << " devices=" << final1->size()
            << " failures=" << failures << std::endl;
  return failures ? 1 : 0;
}

// ---- hammer ----

int run_hammer(const Options& options) {
  auto connection = connect(options.bus);
  auto proxy = sdbus::createProxy(*connection, "org.diskgate1", "/org/diskgate1");
  std::mt19937 random(options.seed * 7919u + static_cast<unsigned>(options.id));
  std::vector<std::string> specs = {"UUID=00000000-0000-0000-0000-000000000000", "LABEL=storm-none"};
  std::map<std::string, long> calls, answers;
  std::map<std::string, double> max_ms;
  long failures = 0;
  auto timeout = std::chrono::milliseconds(options.timeout_ms);
  auto failed = [&](const std::string& what, const std::string& why) {
    if (++failures <= 20) std::cout << "not ok - client " << options.id << ": " << what << ": " << why << std::endl;
  };
  while (::access(options.stop.c_str(), F_OK) != 0 && !terminated) {
    int pick = static_cast<int>(random() % 4);
    auto start = Clock::now();
    std::string method = pick < 2 ? "Resolve" : pick == 2 ? "ListDevices" : "GetManagedObjects";
    std::string what = method;
    try {
      if (method == "Resolve") {
        std::string spec = specs[random() % specs.size()];
        what += "(" + spec + ")";
        std::string node;
        proxy->callMethod("Resolve").onInterface(manager_interface).withTimeout(timeout).withArguments(spec)
            .storeResultsTo(node);
        if (node.empty()) failed(what, "an empty answer");
      } else if (method == "ListDevices") {
        std::vector<Dict> devices;
        proxy->callMethod("ListDevices").onInterface(manager_interface).withTimeout(timeout)
            .storeResultsTo(devices);
        specs.resize(2);
        for (const Dict& d : devices) {
          json j = to_json(d);
          specs.push_back(j.value("Node", "/dev/none"));
          static const std::pair<const char*, const char*> kinds[] = {
              {"Uuid", "UUID="}, {"Label", "LABEL="}, {"UuidSub", "UUID_SUB="}, {"PartUuid", "PARTUUID="},
              {"PartLabel", "PARTLABEL="}};
          for (auto [key, prefix] : kinds)
            if (j.contains(key) && !j[key].get<std::string>().empty())
              specs.push_back(prefix + j[key].get<std::string>());
        }
      } else {
        Objects objects;
        proxy->callMethod("GetManagedObjects").onInterface("org.freedesktop.DBus.ObjectManager").withTimeout(timeout)
            .storeResultsTo(objects);
      }
      ++answers[method];
    } catch (const sdbus::Error& e) {
      std::string name = e.getName();
      if (method == "Resolve" && (name == "org.diskgate1.Error.NotFound" || name == "org.diskgate1.Error.Ambiguous")) {
        ++answers[name.substr(name.rfind('.') + 1)];
      } else {
        failed(what, name + ": " + e.getMessage());
      }
    }
    ++calls[method];
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    max_ms[method] = std::max(max_ms[method], ms);
  }
  std::printf("RESULT client=%d resolve=%ld (answered %ld, NotFound %ld, Ambiguous %ld, max %.0f ms) "
              "list=%ld (max %.0f ms) objects=%ld (max %.0f ms) failures=%ld\n",
              options.id, calls["Resolve"], answers["Resolve"], answers["NotFound"], answers["Ambiguous"],
              max_ms["Resolve"], calls["ListDevices"], max_ms["ListDevices"], calls["GetManagedObjects"],
              max_ms["GetManagedObjects"], failures);
  return failures ? 1 : 0;
}

// ---- list, quiet, rescan, loop-remove ----

int run_list(const Options& options) {
  auto connection = connect(options.bus);
  auto proxy = sdbus::createProxy(*connection, "org.diskgate1", "/org/diskgate1");
  std::vector<Dict> devices;
  proxy->callMethod("ListDevices").onInterface(manager_interface).withTimeout(std::chrono::seconds(30))
      .storeResultsTo(devices);
  json out = json::array();
  for (const Dict& d : devices) out.push_back(to_json(d));
  std::cout << out.dump() << '\n';
  return 0;
}

int run_quiet(const Options& options) {
  auto connection = connect(options.bus);
  auto last = Clock::now();
  long seen = 0;
  std::optional<std::regex> nodes;
  if (!options.nodes.empty()) nodes.emplace(options.nodes);
  auto slot = connection->addMatch(
      "type='signal',sender='org.diskgate1',path='/org/diskgate1',interface='org.diskgate1.Manager'",
      [&](sdbus::Message& message) {
        if (nodes) {
          // Only news of the devices --nodes names (the machine is shared).
          std::string member = message.getMemberName(), node;
          if (member == "DeviceAdded" || member == "DeviceChanged") {
            Dict device;
            message >> device;
            node = to_json(device).value("Node", "");
          } else if (member == "DeviceRemoved") {
            message >> node;
          } else {
            return;
          }
          if (!std::regex_match(node, *nodes)) return;
        }
        last = Clock::now();
        ++seen;
      });
  auto quiet_for = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.seconds));
  auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.max));
  pump(*connection, [&] { return Clock::now() - last >= quiet_for || Clock::now() >= end; });
  bool quiet = Clock::now() - last >= quiet_for;
  std::cout << "QUIET " << (quiet ? "yes" : "no") << " signals=" << seen << std::endl;
  return quiet ? 0 : 1;
}

int run_rescan(const Options& options) {
  auto connection = connect(options.bus);
  auto proxy = sdbus::createProxy(*connection, "org.diskgate1", "/org/diskgate1");
  proxy->callMethod("Rescan").onInterface(manager_interface).withTimeout(std::chrono::seconds(30));
  return 0;
}

// The exFAT main boot region's checksum (exFAT specification 3.4: sectors
// 0 to 10, without VolumeFlags and PercentInUse, against sector 11).
int run_exfat_checksum(const Options& options) {
  int fd = ::open(options.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::perror(options.path.c_str());
    return 2;
  }
  std::vector<unsigned char> boot(512);
  if (::pread(fd, boot.data(), boot.size(), 0) != 512 || std::memcmp(boot.data() + 3, "EXFAT   ", 8) != 0) {
    ::close(fd);
    return 2;
  }
  unsigned shift = boot[108];
  if (shift < 9 || shift > 12) {
    ::close(fd);
    return 1;
  }
  std::size_t sector = std::size_t{1} << shift;
  std::vector<unsigned char> region(12 * sector);
  ssize_t got = ::pread(fd, region.data(), region.size(), 0);
  ::close(fd);
  if (got != static_cast<ssize_t>(region.size())) return 2;
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < 11 * sector; ++i) {
    if (i == 106 || i == 107 || i == 112) continue;
    sum = ((sum & 1) ? 0x80000000u : 0u) + (sum >> 1) + region[i];
  }
  for (std::size_t at = 11 * sector; at < 12 * sector; at += 4) {
    std::uint32_t stored = region[at] | region[at + 1] << 8 | region[at + 2] << 16 |
                           static_cast<std::uint32_t>(region[at + 3]) << 24;
    if (stored != sum) return 1;
  }
  return 0;
}

int run_loop_remove(const Options& options) {
  int control = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (control < 0) {
    std::perror("storm-client: /dev/loop-control");
    return 1;
  }
  int tries = 0;
  int status = 0;
  while (::ioctl(control, LOOP_CTL_REMOVE, options.loop) < 0) {
    if (errno == ENODEV) break;
    if (errno != EBUSY || ++tries == 50) {
      std::fprintf(stderr, "storm-client: LOOP_CTL_REMOVE loop%d: %s\n", options.loop, std::strerror(errno));
      status = 1;
      break;
    }
    ::usleep(100'000);
  }
  ::close(control);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: storm-client watch|hammer|list|quiet|rescan|loop-remove ...\n";
    return 2;
  }
  Options options;
  options.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--bus") options.bus = value();
    else if (arg == "--log") options.log = value();
    else if (arg == "--final") options.final_file = value();
    else if (arg == "--stop") options.stop = value();
    else if (arg == "--id") options.id = std::stoi(value());
    else if (arg == "--seed") options.seed = static_cast<unsigned>(std::stoul(value()));
    else if (arg == "--timeout-ms") options.timeout_ms = std::stoi(value());
    else if (arg == "--seconds") options.seconds = std::stod(value());
    else if (arg == "--max") options.max = std::stod(value());
    else if (arg == "--nodes") options.nodes = value();
    else if (options.command == "loop-remove") options.loop = std::stoi(arg);
    else if (options.command == "exfat-checksum") options.path = arg;
    else {
      std::cerr << "storm-client: unknown argument " << arg << "\n";
      return 2;
    }
  }
  struct sigaction action {};
  action.sa_handler = [](int signal) {
    if (signal == SIGUSR1) final_requested = 1;
    else terminated = 1;
  };
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  try {
    if (options.command == "watch") return run_watch(options);
    if (options.command == "hammer") return run_hammer(options);
    if (options.command == "list") return run_list(options);
    if (options.command == "quiet") return run_quiet(options);
    if (options.command == "rescan") return run_rescan(options);
    if (options.command == "loop-remove") return run_loop_remove(options);
    if (options.command == "exfat-checksum") return run_exfat_checksum(options);
  } catch (const sdbus::Error& e) {
    std::cerr << "storm-client " << options.command << ": D-Bus: " << e.getName() << ": " << e.getMessage() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "storm-client " << options.command << ": " << e.what() << "\n";
    return 1;
  }
  std::cerr << "storm-client: unknown command " << options.command << "\n";
  return 2;
}
