// bench-hotplug: how fast a hotplug service tells a D-Bus client about a new
// loop device, and how fast it answers "which device has UUID x?".
//
//   bench-hotplug attach  --target diskgate|udisks --bus ADDR --image IMG --uuid U [--cycles N] [--close] [--trace]
//   bench-hotplug resolve --target diskgate|udisks --bus ADDR --uuid U [--calls N] [--runs R]
//   bench-hotplug wait    --target diskgate|udisks --bus ADDR --uuid U... [--timeout S]
//   bench-hotplug list    --target diskgate|udisks --bus ADDR [--runs R]
//
// attach: N cycles of attaching IMG to a free loop device with the ioctls
// themselves (LOOP_CTL_GET_FREE, then LOOP_CONFIGURE timestamped just
// before: the attach; finding the free device, which the kernel does by
// walking every loop device, is timed apart),
// waiting for the service's signal that carries U for that device, then
// detaching and waiting for the service to see the device go empty.
// diskgate: DeviceAdded/DeviceChanged with Uuid U and State "identified".
// udisks: PropertiesChanged of org.freedesktop.UDisks2.Block with IdUUID U,
// or InterfacesAdded with that interface and IdUUID U.
// --close closes the loop device right after attaching it, as losetup does
// (which, through inotify, makes udevd and diskgated probe it once more).
// --trace prints one "CYCLE i started_ns=... signal_ns=..." line a cycle, in
// CLOCK_MONOTONIC nanoseconds (bench/slowdisk matches its FUSE file's reads
// against them).
//
// wait: until the service has identified every U, both the same way, from
// its signals: for udisks GetManagedObjects once the name answers, then
// InterfacesAdded / PropertiesChanged, until as many Block objects carry
// each IdUUID as the U list names it (a two-device btrfs: its UUID twice);
// for diskgate ListDevices once the name answers, then DeviceAdded /
// DeviceChanged, until an identified device carries each U (UUID_SUB=...
// for a btrfs member). --poll (diskgate): each U asked with Resolve every
// 20 ms until it answers instead, as a script would; for many U that costs
// the service (and the machine) a call per U and round.
//
// resolve: N synchronous calls from one connection: diskgate
// Manager.Resolve("UUID=U"), udisks Manager.ResolveDevice({uuid: U}, {}).
// Done R times (default 5); the run with the most calls/s is reported (best
// of R, as bench/probe does), so that load from elsewhere on the machine
// does not decide, and the median run's calls/s (one lucky run, where the
// CPUs happened to stay awake, does not decide a comparison either); every
// run's calls/s is printed too.
//
// list: how long the whole map takes to fetch: GetManagedObjects (diskgate
// /org/diskgate1, udisks /org/freedesktop/UDisks2), and diskgate's
// ListDevices; the fastest of R calls and their median, call to reply
// received (not unpacked).
//
// To tell the kernel's share from the service's, the bench also listens to
// kernel uevents itself and reports when the loop device's first "change"
// arrived and when LOOP_CONFIGURE returned; and how long LOOP_CTL_GET_FREE
// took (get_free_*), and the whole from it (from_get_free_*: as losetup
// --find would see it).
//
// Results go to stdout, one "RESULT key=value ..." line per measurement.
#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <signal.h>
#include <linux/netlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <sdbus-c++/sdbus-c++.h>

namespace {

using Clock = std::chrono::steady_clock;
using Dict = std::map<std::string, sdbus::Variant>;

volatile sig_atomic_t interrupted = 0;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(errno)));
}

enum class Target { diskgate, udisks };

struct Options {
  std::string command;
  Target target = Target::diskgate;
  std::string bus;
  std::string image;
  std::vector<std::string> uuids;
  int cycles = 200;
  int calls = 5000;
  int runs = 5;
  double timeout = 60;
  bool close_after_attach = false;
  bool trace = false;
  bool poll = false;  // wait: Resolve every 20 ms instead of the signals
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::unique_ptr<sdbus::IConnection> connect(const Options& options) {
  if (options.bus == "system") return sdbus::createSystemBusConnection();
  return sdbus::createSessionBusConnectionWithAddress(options.bus);
}

// Kernel uevents, read by the bench itself to timestamp the kernel's news.
class KernelUevents {
 public:
  KernelUevents() {
    fd_ = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
    if (fd_ < 0) fail("netlink socket");
    int size = 4 << 20;
    (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    sockaddr_nl address{};
    address.nl_family = AF_NETLINK;
    address.nl_groups = 1;  // the kernel's own multicast group
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) fail("netlink bind");
  }
  ~KernelUevents() { ::close(fd_); }
  int fd() const { return fd_; }
  void expect(const std::string& name) {
    header_ = "change@/devices/virtual/block/" + name;
    seen_.reset();
  }
  void drain() {
    char buffer[8192];
    for (;;) {
      ssize_t n = ::recv(fd_, buffer, sizeof buffer - 1, 0);
      if (n <= 0) return;
      buffer[n] = 0;
      if (!seen_ && header_ == buffer) seen_ = Clock::now();
    }
  }
  const std::optional<Clock::time_point>& seen() const { return seen_; }

 private:
  int fd_ = -1;
  std::string header_;
  std::optional<Clock::time_point> seen_;
};

// Processes incoming messages until `done()` or the deadline; false on timeout.
template <typename Done>
bool pump(sdbus::IConnection& connection, KernelUevents* uevents, Clock::time_point deadline, Done done) {
  while (!done()) {
    if (uevents) uevents->drain();
    while (connection.processPendingRequest()) {
      if (done()) return true;
    }
    if (interrupted) throw std::runtime_error("interrupted");
    auto now = Clock::now();
    if (now >= deadline) return false;
    auto data = connection.getEventLoopPollData();
    // At most 10 ms: `done` may also wait for something that sends no message.
    int wait_ms = std::min<int>(
        10, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1);
    pollfd fds[2] = {{data.fd, data.events, 0}, {uevents ? uevents->fd() : -1, POLLIN, 0}};
    if (::poll(fds, 2, wait_ms) < 0 && errno != EINTR) fail("poll");
  }
  if (uevents) uevents->drain();
  return true;
}

// ---- loop devices ----

class Loop {
 public:
  // Attaches `image` to a free loop device; `started` is taken just before
  // LOOP_CONFIGURE, `searched` just before LOOP_CTL_GET_FREE.
  Loop(const std::string& image, bool autoclear, Clock::time_point& searched, Clock::time_point& started) {
    int control = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control < 0) fail("/dev/loop-control");
    int image_fd = ::open(image.c_str(), O_RDWR | O_CLOEXEC);
    if (image_fd < 0) fail(image);
    for (int attempt = 0;; ++attempt) {
      searched = Clock::now();
      number_ = ::ioctl(control, LOOP_CTL_GET_FREE);
      if (number_ < 0) fail("LOOP_CTL_GET_FREE");
      node_ = fmt::format("/dev/loop{}", number_);
      fd_ = ::open(node_.c_str(), O_RDWR | O_CLOEXEC);
      if (fd_ < 0) fail(node_);
      loop_config config{};
      config.fd = static_cast<__u32>(image_fd);
      config.info.lo_flags = autoclear ? LO_FLAGS_AUTOCLEAR : 0;
      std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), image.c_str(), LO_NAME_SIZE - 1);
      started = Clock::now();
      if (::ioctl(fd_, LOOP_CONFIGURE, &config) == 0) break;
      // Someone took it between GET_FREE and CONFIGURE: take another.
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      if (err != EBUSY || attempt > 20) {
        errno = err;
        fail("LOOP_CONFIGURE " + node_);
      }
    }
    ::close(image_fd);
    ::close(control);
  }
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  ~Loop() { detach(); }

  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void detach() {
    if (number_ < 0) return;
    int fd = fd_ >= 0 ? fd_ : ::open(node_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)::ioctl(fd, LOOP_CLR_FD);
      ::close(fd);
    }
    fd_ = -1;
    number_ = -1;
  }
  const std::string& node() const { return node_; }
  std::string name() const { return node_.substr(5); }
  // The kernel detaches once the last opener (udevd's probe, say) closes.
  static bool empty(const std::string& name) {
    std::ifstream size("/sys/block/" + name + "/size");
    std::uint64_t sectors = 1;
    return (size >> sectors) && sectors == 0;
  }

 private:
  int number_ = -1;
  int fd_ = -1;
  std::string node_;
};

// ---- what each service says ----

// Watches the service's signals about one loop device.
class Watch {
 public:
  Watch(sdbus::IConnection& connection, Target target) {
    if (target == Target::diskgate) {
      slot_ = connection.addMatch(
          "type='signal',sender='org.diskgate1',interface='org.diskgate1.Manager',path='/org/diskgate1'",
          [this](sdbus::Message& message) { on_diskgate(message); });
    } else {
      slot_ = connection.addMatch("type='signal',sender='org.freedesktop.UDisks2'",
                                  [this](sdbus::Message& message) { on_udisks(message); });
    }
  }
  // Starts waiting for news of `node`.
  void expect(const std::string& node, const std::string& uuid) {
    node_ = node;
    name_ = node.substr(5);
    uuid_ = lower(uuid);
    identified_.reset();
    emptied_ = false;
    detaching_ = false;
    seen_.clear();
  }
  // From now on news of the device going empty counts. Before, it is old
  // news: a new loop node is announced empty ("no medium") before it is
  // identified, and a wait satisfied by that would let the next cycle
  // attach before the service had even seen this detach (it would then see
  // the same contents again, rightly announce nothing, and the bench would
  // count a lost signal).
  void detaching() { detaching_ = true; }
  // The signals about the node since expect(), for a report of a lost one.
  const std::string& seen() const { return seen_; }
  const std::optional<Clock::time_point>& identified() const { return identified_; }
  bool emptied() const { return emptied_; }

 private:
  static std::string text(const Dict& dict, const char* key) {
    auto it = dict.find(key);
    if (it == dict.end()) return {};
    try {
      return it->second.get<std::string>();
    } catch (const sdbus::Error&) {
      return {};
    }
  }
  void on_diskgate(sdbus::Message& message) {
    std::string member = message.getMemberName();
    if (member == "DeviceRemoved") {
      std::string node;
      message >> node;
      if (node == node_) mark_emptied();
      return;
    }
    if (member != "DeviceAdded" && member != "DeviceChanged") return;
    Dict device;
    message >> device;
    if (text(device, "Node") != node_) return;
    std::string state = text(device, "State");
    seen_ += fmt::format(" {}({}{}{})", member, state, text(device, "Error").empty() ? "" : " ", text(device, "Error"));
    if (state == "identified" && lower(text(device, "Uuid")) == uuid_) {
      if (!identified_) identified_ = Clock::now();
    } else if (state == "unreadable" && text(device, "Error") == "no medium") {
      // Not "unidentified": a probe racing with the detach reads nothing
      // while the device still has its size.
      mark_emptied();
    }
  }
  void block_properties(const Dict& block) {
    auto it = block.find("IdUUID");
    if (it != block.end()) {
      std::string uuid = lower(it->second.get<std::string>());
      if (uuid == uuid_ && !identified_) identified_ = Clock::now();
    }
    auto size = block.find("Size");
    if (size != block.end() && size->second.get<std::uint64_t>() == 0) mark_emptied();
  }
  void on_udisks(sdbus::Message& message) {
    const std::string block_path = "/org/freedesktop/UDisks2/block_devices/" + name_;
    std::string member = message.getMemberName();
    if (member == "PropertiesChanged" && message.getPath() == block_path) {
      std::string interface;
      Dict changed;
      message >> interface >> changed;
      if (interface == "org.freedesktop.UDisks2.Block") block_properties(changed);
    } else if (member == "InterfacesAdded") {
      sdbus::ObjectPath path;
      std::map<std::string, Dict> interfaces;
      message >> path >> interfaces;
      auto it = interfaces.find("org.freedesktop.UDisks2.Block");
      if (std::string(path) == block_path && it != interfaces.end()) block_properties(it->second);
    } else if (member == "InterfacesRemoved") {
      sdbus::ObjectPath path;
      message >> path;
      if (std::string(path) == block_path) mark_emptied();
    }
  }

  sdbus::Slot slot_;
  std::string node_, name_, uuid_;
  std::optional<Clock::time_point> identified_;
  void mark_emptied() {
    if (detaching_) emptied_ = true;
  }

  bool emptied_ = false;
  bool detaching_ = false;
  std::string seen_;
};

struct Stats {
  double p50, p99, max, mean;
};

Stats stats(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    std::size_t rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
    return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
  };
  double sum = 0;
  for (double v : values) sum += v;
  return {at(0.5), at(0.99), values.back(), sum / static_cast<double>(values.size())};
}

double ms_since(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

const char* target_name(Target target) { return target == Target::diskgate ? "diskgate" : "udisks"; }

int run_attach(const Options& options) {
  auto connection = connect(options);
  Watch watch(*connection, options.target);
  KernelUevents uevents;
  std::vector<double> latencies, searches, from_search, configured, kernel, service;
  int timeouts = 0, detach_timeouts = 0;
  const auto limit = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout));
  for (int cycle = 0; cycle < options.cycles && !interrupted; ++cycle) {
    Clock::time_point searched, started;
    std::string name;
    {
      uevents.drain();
      Loop loop(options.image, !options.close_after_attach, searched, started);
      searches.push_back(ms_since(searched, started));
      configured.push_back(ms_since(started, Clock::now()));
      watch.expect(loop.node(), options.uuids.at(0));
      uevents.expect(loop.name());
      name = loop.name();
      if (options.close_after_attach) loop.close_fd();
      if (pump(*connection, &uevents, started + limit, [&] { return watch.identified().has_value(); })) {
        latencies.push_back(ms_since(started, *watch.identified()));
        from_search.push_back(ms_since(searched, *watch.identified()));
        if (options.trace)
          fmt::print("CYCLE {} started_ns={} signal_ns={}\n", cycle,
                     std::chrono::nanoseconds(started.time_since_epoch()).count(),
                     std::chrono::nanoseconds(watch.identified()->time_since_epoch()).count());
        if (uevents.seen()) {
          kernel.push_back(ms_since(started, *uevents.seen()));
          service.push_back(ms_since(*uevents.seen(), *watch.identified()));  // the service's own share
        }
      } else {
        ++timeouts;
        std::cerr << fmt::format(
            "bench-hotplug: cycle {}: no signal carried {} for {} within {:g} s (seen:{}; the kernel's change "
            "uevent {})\n",
            cycle, options.uuids.at(0), loop.node(), options.timeout, watch.seen().empty() ? " nothing" : watch.seen(),
            uevents.seen() ? fmt::format("came after {:.3f} ms", ms_since(started, *uevents.seen())) : "did not come");
      }
      watch.detaching();
      loop.detach();
    }
    // The next cycle starts once the kernel has detached the device and the
    // service has seen it empty, so that no late news of this one is taken
    // for the next, and a quick re-attach of the same device does not hide
    // the detach from a service that reads the size when the event arrives.
    if (!pump(*connection, nullptr, Clock::now() + limit, [&] { return Loop::empty(name) && watch.emptied(); }))
      ++detach_timeouts;
  }
  if (latencies.empty()) {
    std::cerr << "bench-hotplug: no signal carried the UUID in any cycle\n";
    return 1;
  }
  Stats s = stats(latencies);
  Stats c = stats(configured);
  Stats free = stats(searches);
  Stats whole = stats(from_search);
  Stats k = kernel.empty() ? Stats{NAN, NAN, NAN, NAN} : stats(kernel);
  Stats after = service.empty() ? Stats{NAN, NAN, NAN, NAN} : stats(service);
  fmt::print("RESULT attach target={} n={} p50_ms={:.3f} p99_ms={:.3f} max_ms={:.3f} mean_ms={:.3f} timeouts={} "
             "detach_timeouts={} close={} configure_p50_ms={:.3f} configure_p99_ms={:.3f} uevent_p50_ms={:.3f} "
             "uevent_p99_ms={:.3f} after_uevent_p50_ms={:.3f} after_uevent_p99_ms={:.3f} get_free_p50_ms={:.3f} "
             "get_free_p99_ms={:.3f} from_get_free_p50_ms={:.3f} from_get_free_p99_ms={:.3f}\n",
             target_name(options.target), latencies.size(), s.p50, s.p99, s.max, s.mean, timeouts, detach_timeouts,
             options.close_after_attach ? 1 : 0, c.p50, c.p99, k.p50, k.p99, after.p50, after.p99, free.p50, free.p99,
             whole.p50, whole.p99);
  return timeouts == 0 ? 0 : 1;
}

// One call that resolves `uuid`; returns whether it found a device.
class Resolver {
 public:
  Resolver(sdbus::IConnection& connection, Target target)
      : target_(target),
        proxy_(target == Target::diskgate
                   ? sdbus::createProxy(connection, "org.diskgate1", "/org/diskgate1")
                   : sdbus::createProxy(connection, "org.freedesktop.UDisks2", "/org/freedesktop/UDisks2/Manager")) {}
  bool operator()(const std::string& uuid) {
    if (target_ == Target::diskgate) {
      std::string node;
      try {
        // A bare UUID, or a whole spec (UUID_SUB=... for a btrfs member:
        // a btrfs UUID names several devices, which Resolve refuses).
        std::string spec = uuid.find('=') == std::string::npos ? "UUID=" + uuid : uuid;
        proxy_->callMethod("Resolve").onInterface("org.diskgate1.Manager").withArguments(spec).storeResultsTo(node);
      } catch (const sdbus::Error& e) {
        if (e.getName() == "org.diskgate1.Error.NotFound") return false;
        throw;
      }
      return !node.empty();
    }
    std::vector<sdbus::ObjectPath> paths;
    Dict spec{{"uuid", sdbus::Variant(uuid)}};
    Dict none;
    proxy_->callMethod("ResolveDevice")
        .onInterface("org.freedesktop.UDisks2.Manager")
        .withArguments(spec, none)
        .storeResultsTo(paths);
    return !paths.empty();
  }

 private:
  Target target_;
  std::unique_ptr<sdbus::IProxy> proxy_;
};

int run_resolve(const Options& options) {
  auto connection = connect(options);
  Resolver resolve(*connection, options.target);
  const std::string& uuid = options.uuids.at(0);
  if (!resolve(uuid)) {
    std::cerr << "bench-hotplug: " << target_name(options.target) << " does not resolve " << uuid << "\n";
    return 1;
  }
  struct Run {
    Stats stats;
    double rate;
    std::size_t n;
  };
  std::vector<Run> runs;
  for (int run = 0; run < options.runs && !interrupted; ++run) {
    std::vector<double> latencies;
    latencies.reserve(static_cast<std::size_t>(options.calls));
    auto begin = Clock::now();
    for (int i = 0; i < options.calls && !interrupted; ++i) {
      auto start = Clock::now();
      resolve(uuid);
      latencies.push_back(ms_since(start, Clock::now()));
    }
    double seconds = ms_since(begin, Clock::now()) / 1000;
    runs.push_back({stats(latencies), static_cast<double>(latencies.size()) / seconds, latencies.size()});
  }
  if (runs.empty()) return 1;
  std::string rates;
  for (const Run& run : runs) rates += fmt::format("{}{:.0f}", rates.empty() ? "" : ",", run.rate);
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.rate < b.rate; });
  const Run& best = runs.back();
  fmt::print("RESULT resolve target={} n={} p50_ms={:.4f} p99_ms={:.4f} max_ms={:.3f} calls_per_s={:.0f} "
             "median_calls_per_s={:.0f} runs_calls_per_s={}\n",
             target_name(options.target), best.n, best.stats.p50, best.stats.p99, best.stats.max, best.rate,
             runs[runs.size() / 2].rate, rates);
  return 0;
}

// Calls `method` every 20 ms until the service has taken its name and
// answers; false (said on stderr) at the deadline.
template <typename Result>
bool call_once_there(sdbus::IProxy& proxy, const char* interface, const char* method, Clock::time_point deadline,
                     Result& result) {
  for (;;) {
    try {
      proxy.callMethod(method).onInterface(interface).storeResultsTo(result);
      return true;
    } catch (const sdbus::Error&) {
      if (interrupted || Clock::now() > deadline) {
        std::cerr << "bench-hotplug: " << proxy.getObjectPath() << " did not answer " << method << "\n";
        return false;
      }
      ::usleep(20'000);  // not there yet
    }
  }
}

int run_wait_udisks(const Options& options) {
  auto connection = connect(options);
  const std::string root_path = "/org/freedesktop/UDisks2";
  const std::string block_interface = "org.freedesktop.UDisks2.Block";
  std::map<std::string, std::size_t> wanted;  // UUID -> how many Block objects carry it
  for (const std::string& uuid : options.uuids) ++wanted[lower(uuid)];
  std::map<std::string, std::set<std::string>> carriers;
  std::size_t left = wanted.size();
  auto block = [&](const std::string& path, const Dict& properties) {
    auto it = properties.find("IdUUID");
    if (it == properties.end()) return;
    std::string uuid = lower(it->second.get<std::string>());
    auto want = wanted.find(uuid);
    if (want == wanted.end()) return;
    auto& paths = carriers[uuid];
    if (paths.size() < want->second && paths.insert(path).second && paths.size() == want->second) --left;
  };
  // No sender in the rules: the name has no owner yet when they are added.
  auto added = connection->addMatch(
      "type='signal',interface='org.freedesktop.DBus.ObjectManager',member='InterfacesAdded',path='" + root_path + "'",
      [&](sdbus::Message& message) {
        sdbus::ObjectPath path;
        std::map<std::string, Dict> interfaces;
        message >> path >> interfaces;
        auto it = interfaces.find(block_interface);
        if (it != interfaces.end()) block(path, it->second);
      });
  auto changed = connection->addMatch(
      "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path_namespace='" +
          root_path + "'",
      [&](sdbus::Message& message) {
        std::string interface;
        Dict properties;
        message >> interface >> properties;
        if (interface == block_interface) block(message.getPath(), properties);
      });
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout));
  auto root = sdbus::createProxy(*connection, "org.freedesktop.UDisks2", root_path);
  std::map<sdbus::ObjectPath, std::map<std::string, Dict>> objects;
  if (!call_once_there(*root, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", deadline, objects)) return 1;
  for (const auto& [path, interfaces] : objects) {
    auto it = interfaces.find(block_interface);
    if (it != interfaces.end()) block(path, it->second);
  }
  if (!pump(*connection, nullptr, deadline, [&] { return left == 0; })) {
    std::string example;
    for (const auto& [uuid, count] : wanted)
      if (carriers[uuid].size() < count) {
        example = uuid;
        break;
      }
    std::cerr << "bench-hotplug: " << left << " UUIDs still not reported by udisks, e.g. " << example << "\n";
    return 1;
  }
  return 0;
}

// The same way as udisks: the signals (DeviceAdded, DeviceChanged), after
// ListDevices once the name answers, until an identified device carries
// each UUID (or UUID_SUB=..., for a btrfs member).
int run_wait_diskgate(const Options& options) {
  auto connection = connect(options);
  std::set<std::string> left_uuids, left_subs;
  for (const std::string& uuid : options.uuids) {
    if (uuid.starts_with("UUID_SUB="))
      left_subs.insert(lower(uuid.substr(9)));
    else if (uuid.find('=') == std::string::npos)
      left_uuids.insert(lower(uuid));
    else
      throw std::runtime_error("wait: " + uuid + ": only a UUID or UUID_SUB=... can be waited for");
  }
  auto device = [&](const Dict& properties) {
    auto text = [&](const char* key) {
      auto it = properties.find(key);
      return it == properties.end() ? std::string() : lower(it->second.get<std::string>());
    };
    if (text("State") != "identified") return;
    left_uuids.erase(text("Uuid"));
    left_subs.erase(text("UuidSub"));
  };
  // No sender in the rules: the name has no owner yet when they are added.
  std::vector<sdbus::Slot> matches;
  for (const char* member : {"DeviceAdded", "DeviceChanged"})
    matches.push_back(connection->addMatch(
        fmt::format("type='signal',interface='org.diskgate1.Manager',member='{}',path='/org/diskgate1'", member),
        [&](sdbus::Message& message) {
          Dict properties;
          message >> properties;
          device(properties);
        }));
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout));
  auto root = sdbus::createProxy(*connection, "org.diskgate1", "/org/diskgate1");
  std::vector<Dict> devices;
  if (!call_once_there(*root, "org.diskgate1.Manager", "ListDevices", deadline, devices)) return 1;
  for (const Dict& properties : devices) device(properties);
  if (!pump(*connection, nullptr, deadline, [&] { return left_uuids.empty() && left_subs.empty(); })) {
    std::cerr << "bench-hotplug: " << left_uuids.size() + left_subs.size() << " UUIDs still not reported, e.g. "
              << (left_uuids.empty() ? *left_subs.begin() : *left_uuids.begin()) << "\n";
    return 1;
  }
  return 0;
}

int run_wait(const Options& options) {
  if (options.target == Target::udisks) return run_wait_udisks(options);
  if (!options.poll) return run_wait_diskgate(options);
  auto connection = connect(options);
  Resolver resolve(*connection, options.target);
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.timeout));
  std::vector<std::string> left = options.uuids;
  while (!left.empty()) {
    std::erase_if(left, [&](const std::string& uuid) {
      try {
        return resolve(uuid);
      } catch (const sdbus::Error&) {
        return false;  // the service is not there yet
      }
    });
    if (left.empty()) break;
    if (interrupted || Clock::now() > deadline) {
      std::cerr << "bench-hotplug: " << left.size() << " UUIDs still unresolved, e.g. " << left.front() << "\n";
      return 1;
    }
    ::usleep(20'000);
  }
  return 0;
}

// The fastest and the median of `runs` timed calls of `call`, in ms.
template <typename Call>
std::pair<double, double> time_calls(int runs, Call call) {
  std::vector<double> ms;
  for (int run = 0; run < runs && !interrupted; ++run) {
    auto start = Clock::now();
    call();
    ms.push_back(ms_since(start, Clock::now()));
  }
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

// Times `method` of `interface` on `proxy`: until the reply is in, not
// parsed (the client's own unpacking into sdbus::Variant costs more than
// the service's answer); the reply is parsed once after, for its size.
template <typename Result>
std::tuple<double, double, std::size_t> time_method(sdbus::IProxy& proxy, const char* interface, const char* method,
                                                    int runs) {
  auto [best, median] = time_calls(runs, [&] { proxy.callMethod(proxy.createMethodCall(interface, method)); });
  Result result;
  proxy.callMethod(method).onInterface(interface).storeResultsTo(result);
  return {best, median, result.size()};
}

int run_list(const Options& options) {
  auto connection = connect(options);
  bool diskgate = options.target == Target::diskgate;
  auto root = sdbus::createProxy(*connection, diskgate ? "org.diskgate1" : "org.freedesktop.UDisks2",
                                 diskgate ? "/org/diskgate1" : "/org/freedesktop/UDisks2");
  auto [managed_best, managed_median, objects] =
      time_method<std::map<sdbus::ObjectPath, std::map<std::string, Dict>>>(
          *root, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", options.runs);
  std::string list;
  if (diskgate) {
    auto [best, median, devices] =
        time_method<std::vector<Dict>>(*root, "org.diskgate1.Manager", "ListDevices", options.runs);
    list = fmt::format(" list_devices={} list_best_ms={:.2f} list_median_ms={:.2f}", devices, best, median);
  }
  fmt::print("RESULT list target={} objects={} managed_best_ms={:.2f} managed_median_ms={:.2f}{}\n",
             target_name(options.target), objects, managed_best, managed_median, list);
  return 0;
}

void usage() {
  std::cerr << "usage: bench-hotplug attach|resolve|wait|list --target diskgate|udisks --bus ADDRESS|system\n"
               "         [--image IMG] [--uuid U]... [--cycles N] [--calls N] [--runs R] [--timeout S] [--close] [--trace] [--poll]\n";
}

Options parse(int argc, char** argv) {
  Options options;
  if (argc < 2) throw std::invalid_argument("no command");
  options.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--target") {
      std::string t = value();
      if (t == "diskgate") options.target = Target::diskgate;
      else if (t == "udisks") options.target = Target::udisks;
      else throw std::invalid_argument("unknown target " + t);
    } else if (arg == "--bus") options.bus = value();
    else if (arg == "--image") options.image = value();
    else if (arg == "--uuid") options.uuids.push_back(value());
    else if (arg == "--cycles") options.cycles = std::stoi(value());
    else if (arg == "--calls") options.calls = std::stoi(value());
    else if (arg == "--runs") options.runs = std::max(1, std::stoi(value()));
    else if (arg == "--timeout") options.timeout = std::stod(value());
    else if (arg == "--close") options.close_after_attach = true;
    else if (arg == "--trace") options.trace = true;
    else if (arg == "--poll") options.poll = true;
    else throw std::invalid_argument("unknown argument " + arg);
  }
  if (options.bus.empty()) throw std::invalid_argument("--bus is needed");
  if (options.uuids.empty() && options.command != "list") throw std::invalid_argument("--uuid is needed");
  if (options.command == "attach" && options.image.empty()) throw std::invalid_argument("attach needs --image");
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench-hotplug: " << e.what() << "\n";
    usage();
    return 2;
  }
  struct sigaction action {};
  action.sa_handler = [](int) { interrupted = 1; };
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  try {
    if (options.command == "attach") return run_attach(options);
    if (options.command == "resolve") return run_resolve(options);
    if (options.command == "wait") return run_wait(options);
    if (options.command == "list") return run_list(options);
    usage();
    return 2;
  } catch (const sdbus::Error& e) {
    std::cerr << "bench-hotplug: D-Bus: " << e.getName() << ": " << e.getMessage() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench-hotplug: " << e.what() << "\n";
  }
  return 1;
}
