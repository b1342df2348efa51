// diskgatectl's D-Bus commands, run as a child process against a fake
// diskgated: a private dbus-daemon started per test, and an in-process
// org.diskgate1 service (sdbus-c++) that answers from fixed data and emits
// signals when the test says. The test drives the fake's connection and the
// child's pipes from one poll() loop, so no thread touches sd-bus but this one.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using Dict = std::map<std::string, sdbus::Variant>;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* manager_interface = "org.diskgate1.Manager";

std::string ctl_path() {
  const char* path = std::getenv("DISKGATECTL");
  if (path == nullptr) FAIL("DISKGATECTL (path of the built diskgatectl) is not set; run through meson test");
  return path;
}

// A dbus-daemon of our own, killed when the test ends however it ends
// (and by the kernel if this process dies first: PDEATHSIG).
class PrivateBus {
 public:
  PrivateBus() {
    char dir_template[] = "/tmp/diskgate-bus-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr) FAIL("mkdtemp: " << std::strerror(errno));
    dir_ = dir_template;
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    std::string listen = "--address=unix:path=" + dir_ + "/bus";
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(pipe_fds[1], 3);  // dup2 clears close-on-exec on fd 3
      int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, 0);
      // Its warnings (as root: "Failed to set fd limit") go to a log that
      // a failed start shows.
      int log = ::open(log_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(log, 2);
      ::execlp("dbus-daemon", "dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=3",
               listen.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    // dbus-daemon prints its address once it listens.
    std::string line;
    auto limit = Clock::now() + 10s;
    while (line.find('\n') == std::string::npos && Clock::now() < limit) {
      pollfd p{pipe_fds[0], POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buffer[512];
      ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
      if (n <= 0) break;
      line.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(pipe_fds[0]);
    if (line.find('\n') == std::string::npos) {
      std::ifstream log(log_path());
      std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
      cleanup();  // the destructor does not run for a half-built object
      FAIL("dbus-daemon did not start (is the dbus-daemon package installed?): " << text);
    }
    address_ = line.substr(0, line.find('\n'));
  }
  ~PrivateBus() { cleanup(); }
  PrivateBus(const PrivateBus&) = delete;
  PrivateBus& operator=(const PrivateBus&) = delete;

  const std::string& address() const { return address_; }

 private:
  std::string log_path() const { return dir_ + "/dbus-daemon.log"; }

  void cleanup() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    ::unlink((dir_ + "/bus").c_str());
    ::unlink(log_path().c_str());
    ::rmdir(dir_.c_str());
  }

  pid_t pid_ = -1;
  std::string dir_;
  std::string address_;
};

Dict device(const std::string& name, const std::string& type, const std::string& label, const std::string& uuid,
            const std::string& state = "identified", std::uint64_t devid = 0, std::uint64_t btrfs_devices = 0) {
  Dict d;
  d["Name"] = name;
  d["Node"] = "/dev/" + name;
  d["SysPath"] = "/sys/class/block/" + name;
  d["Major"] = std::uint32_t{254};
  d["Minor"] = std::uint32_t{static_cast<std::uint32_t>(name.size())};
  d["Size"] = std::uint64_t{1} << 30;
  d["Parent"] = std::string{};
  d["Removable"] = false;
  d["State"] = state;
  d["Error"] = std::string{};
  d["Type"] = type;
  d["Uuid"] = uuid;
  d["UuidSub"] = std::string{};
  d["Label"] = label;
  d["PartUuid"] = std::string{};
  d["PartLabel"] = std::string{};
  std::map<std::string, std::string> tags;
  if (!type.empty()) tags["TYPE"] = type;
  if (!uuid.empty()) tags["UUID"] = uuid;
  if (!label.empty()) tags["LABEL"] = label;
  d["Tags"] = tags;
  d["BtrfsDevid"] = devid;
  d["BtrfsDevices"] = btrfs_devices;
  return d;
}

constexpr const char* root_uuid = "3e6f2c8a-1b4d-4e5f-9a0b-1c2d3e4f5a6b";
constexpr const char* pool_uuid = "9d7c6b5a-4e3f-4a2b-8c1d-0e9f8a7b6c5d";
constexpr const char* half_uuid = "11111111-2222-4333-8444-555555555555";

Dict filesystem(const std::string& type, const std::string& label, std::uint64_t expected,
                const std::vector<std::string>& devices, const std::vector<std::uint64_t>& missing,
                const std::vector<std::string>& conflicts = {}) {
  Dict fs;
  fs["type"] = type;
  fs["label"] = label;
  fs["expected"] = expected;
  fs["present"] = std::uint64_t{devices.size()};
  fs["devices"] = devices;
  fs["missing_devids"] = missing;
  fs["complete"] = missing.empty() && devices.size() == expected;
  fs["conflicts"] = conflicts;
  std::string mount_data;
  for (const auto& d : devices) mount_data += (mount_data.empty() ? "device=" : ",device=") + d;
  fs["mount_data"] = mount_data;
  return fs;
}

// org.diskgate1 on the private bus, answering from `devices` and `filesystems`.
class FakeDaemon {
 public:
  explicit FakeDaemon(const std::string& address) {
    connection_ = sdbus::createSessionBusConnectionWithAddress(address);
    connection_->requestName("org.diskgate1");
    object_ = sdbus::createObject(*connection_, "/org/diskgate1");
    object_->registerMethod("Resolve").onInterface(manager_interface).implementedAs([this](const std::string& spec) {
      ++resolve_calls;
      auto nodes = matches(spec);
      // The hook runs after the lookup and before the reply goes out, so a
      // signal it emits reaches the client ahead of that reply.
      if (on_resolve) on_resolve();
      if (nodes.empty()) throw sdbus::Error("org.diskgate1.Error.NotFound", "no device matches " + spec);
      if (nodes.size() > 1) throw sdbus::Error("org.diskgate1.Error.Ambiguous", spec + " matches several devices");
      return nodes.front();
    });
    object_->registerMethod("ResolveAll").onInterface(manager_interface).implementedAs([this](const std::string& spec) {
      return matches(spec);
    });
    object_->registerMethod("ListDevices").onInterface(manager_interface).implementedAs([this]() {
      ++list_calls;
      return devices;
    });
    object_->registerMethod("GetFilesystem").onInterface(manager_interface).implementedAs([this](const std::string& uuid) {
      ++filesystem_calls;
      auto it = filesystems.find(uuid);
      if (on_get_filesystem) on_get_filesystem();
      if (it == filesystems.end()) throw sdbus::Error("org.diskgate1.Error.NotFound", "no filesystem has UUID " + uuid);
      return it->second;
    });
    object_->registerMethod("Rescan").onInterface(manager_interface).implementedAs([]() {});
    object_->registerSignal("DeviceAdded").onInterface(manager_interface).withParameters<Dict>();
    object_->registerSignal("DeviceChanged").onInterface(manager_interface).withParameters<Dict>();
    object_->registerSignal("DeviceRemoved").onInterface(manager_interface).withParameters<std::string>();
    object_->registerSignal("FilesystemComplete").onInterface(manager_interface).withParameters<std::string>();
    object_->registerSignal("FilesystemIncomplete").onInterface(manager_interface).withParameters<std::string>();
    object_->finishRegistration();

    // Listed out of order on purpose: the client sorts by name.
    devices = {
        device("vda10", "vfat", "EFI", "ABCD-1234"),
        device("vda", "", "", "", "unidentified"),
        device("vdc", "btrfs", "pool", pool_uuid, "identified", 2, 2),
        device("vda2", "swap", "", "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"),
        device("vda1", "ext4", "root", root_uuid),
        device("vdb", "btrfs", "pool", pool_uuid, "identified", 1, 2),
        device("vdd", "btrfs", "half", half_uuid, "identified", 1, 2),
        device("sr0", "iso9660", "evil\x1b[2J", "2024-01-01-00-00-00-00"),
    };
    filesystems[pool_uuid] = filesystem("btrfs", "pool", 2, {"/dev/vdb", "/dev/vdc"}, {});
    filesystems[half_uuid] = filesystem("btrfs", "half", 2, {"/dev/vdd"}, {2}, {"devid 2 is missing"});
    filesystems[root_uuid] = filesystem("ext4", "root", 1, {"/dev/vda1"}, {});
  }

  void emit_device(const char* signal, const Dict& d) {
    object_->emitSignal(signal).onInterface(manager_interface).withArguments(d);
  }
  void emit_string(const char* signal, const std::string& value) {
    object_->emitSignal(signal).onInterface(manager_interface).withArguments(value);
  }
  void add(const Dict& d) {
    devices.push_back(d);
    emit_device("DeviceAdded", d);
  }

  sdbus::IConnection& connection() { return *connection_; }

  std::vector<Dict> devices;
  std::map<std::string, Dict> filesystems;
  int resolve_calls = 0;
  int list_calls = 0;
  int filesystem_calls = 0;
  std::function<void()> on_resolve;
  std::function<void()> on_get_filesystem;

 private:
  // A small stand-in for the daemon's spec matching: KEY=value or a bare
  // UUID or a /dev path; anything else with '=' is invalid.
  std::vector<std::string> matches(const std::string& spec) {
    std::string key = "Uuid", value = spec;
    if (spec.rfind("/dev/", 0) == 0) {
      key = "Node";
    } else if (auto eq = spec.find('='); eq != std::string::npos) {
      std::string name = spec.substr(0, eq);
      value = spec.substr(eq + 1);
      if (name == "UUID") key = "Uuid";
      else if (name == "LABEL") key = "Label";
      else
        throw sdbus::Error("org.freedesktop.DBus.Error.InvalidArgs",
                           "invalid device spec \"" + spec + "\": unknown key " + name);
    }
    std::vector<const Dict*> found;
    for (const auto& d : devices) {
      if (d.at(key).get<std::string>() == value) found.push_back(&d);
    }
    // As the daemon: btrfs members in devid order.
    std::stable_sort(found.begin(), found.end(), [](const Dict* a, const Dict* b) {
      return a->at("BtrfsDevid").get<std::uint64_t>() < b->at("BtrfsDevid").get<std::uint64_t>();
    });
    std::vector<std::string> nodes;
    for (const Dict* d : found) nodes.push_back(d->at("Node").get<std::string>());
    return nodes;
  }

  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<sdbus::IObject> object_;
};

// diskgatectl as a child process; run() serves the fake while it runs.
class Ctl {
 public:
  explicit Ctl(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), ctl_path());
    std::vector<std::string> environment;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry = *e;
      if (!env.count(entry.substr(0, entry.find('=')))) environment.push_back(entry);
    }
    for (const auto& [key, value] : env) environment.push_back(key + "=" + value);
    std::vector<char*> argv, envp;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);

    int out_pipe[2], err_pipe[2];
    REQUIRE(::pipe2(out_pipe, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err_pipe, O_CLOEXEC) == 0);
    started_ = Clock::now();
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, 0);
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    out_fd_ = out_pipe[0];
    err_fd_ = err_pipe[0];
  }
  ~Ctl() {
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Ctl(const Ctl&) = delete;
  Ctl& operator=(const Ctl&) = delete;

  // Runs `job` once `delay` from now has passed (while run() loops).
  void after(std::chrono::milliseconds delay, std::function<void()> job) {
    jobs_.push_back({Clock::now() + delay, std::move(job)});
  }
  void signal(int sig) { ::kill(pid_, sig); }

  // Serves `fake` (if any) until the child exits; the child's status
  // lands in `status` (128+N when killed by signal N).
  void run(FakeDaemon* fake, std::chrono::seconds limit = 20s) {
    auto give_up = Clock::now() + limit;
    while (out_fd_ >= 0 || err_fd_ >= 0) {
      if (fake) {
        while (fake->connection().processPendingRequest()) {
        }
      }
      auto now = Clock::now();
      for (std::size_t i = 0; i < jobs_.size();) {
        if (jobs_[i].first <= now) {
          auto job = std::move(jobs_[i].second);
          jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(i));
          job();
          i = 0;
        } else {
          ++i;
        }
      }
      if (fake) {
        while (fake->connection().processPendingRequest()) {
        }
      }
      if (now >= give_up) {
        ::kill(pid_, SIGKILL);
        FAIL("diskgatectl did not finish in time; stdout: " << out << " stderr: " << err);
      }
      auto wake = give_up;
      for (const auto& job : jobs_) wake = std::min(wake, job.first);
      int timeout = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wake - now).count());
      std::vector<pollfd> fds;
      if (out_fd_ >= 0) fds.push_back({out_fd_, POLLIN, 0});
      if (err_fd_ >= 0) fds.push_back({err_fd_, POLLIN, 0});
      if (fake) {
        auto data = fake->connection().getEventLoopPollData();
        fds.push_back({data.fd, data.events, 0});
        int fake_timeout = data.getPollTimeout();
        if (fake_timeout >= 0) timeout = std::min(timeout, fake_timeout);
      }
      ::poll(fds.data(), fds.size(), std::max(timeout, 0));
      for (const auto& p : fds) {
        if (p.revents == 0) continue;
        if (p.fd == out_fd_) drain(out_fd_, out);
        else if (p.fd == err_fd_) drain(err_fd_, err);
      }
      if (on_output) on_output();
    }
    int wstatus = 0;
    REQUIRE(::waitpid(pid_, &wstatus, 0) == pid_);
    pid_ = -1;
    seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  }

  std::string out, err;
  int status = -1;
  double seconds = 0;
  std::function<void()> on_output;  // after each wake-up of run()

 private:
  static void drain(int& fd, std::string& into) {
    char buffer[4096];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      into.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      ::close(fd);
      fd = -1;
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  Clock::time_point started_;
  std::vector<std::pair<Clock::time_point, std::function<void()>>> jobs_;
};

// Runs diskgatectl with --bus pointing at `bus`, serving `fake`.
std::unique_ptr<Ctl> run(const PrivateBus& bus, FakeDaemon* fake, std::vector<std::string> args) {
  args.insert(args.begin(), {"--bus", bus.address()});
  auto ctl = std::make_unique<Ctl>(args);
  ctl->run(fake);
  UNSCOPED_INFO("diskgatectl " << args.back() << ": stderr: " << ctl->err);
  return ctl;
}

}  // namespace

TEST_CASE("list prints a table sorted by name", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto ctl = run(bus, &fake, {"list"});
  CHECK(ctl->status == 0);
  CHECK(ctl->err.empty());
  // Natural order (vda2 before vda10); "-" for empty cells; the control
  // byte in sr0's label is escaped.
  CHECK(ctl->out ==
        "NAME   NODE        TYPE     LABEL        UUID                                  STATE\n"
        "sr0    /dev/sr0    iso9660  evil\\x1b[2J  2024-01-01-00-00-00-00                identified\n"
        "vda    /dev/vda    -        -            -                                     unidentified\n"
        "vda1   /dev/vda1   ext4     root         3e6f2c8a-1b4d-4e5f-9a0b-1c2d3e4f5a6b  identified\n"
        "vda2   /dev/vda2   swap     -            5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d  identified\n"
        "vda10  /dev/vda10  vfat     EFI          ABCD-1234                             identified\n"
        "vdb    /dev/vdb    btrfs    pool         9d7c6b5a-4e3f-4a2b-8c1d-0e9f8a7b6c5d  identified\n"
        "vdc    /dev/vdc    btrfs    pool         9d7c6b5a-4e3f-4a2b-8c1d-0e9f8a7b6c5d  identified\n"
        "vdd    /dev/vdd    btrfs    half         11111111-2222-4333-8444-555555555555  identified\n");
}

TEST_CASE("list --json prints every device with every property", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto ctl = run(bus, &fake, {"list", "--json"});
  REQUIRE(ctl->status == 0);
  auto json = Json::parse(ctl->out);
  REQUIRE(json.is_array());
  REQUIRE(json.size() == 8);
  std::vector<std::string> names;
  for (const auto& d : json) names.push_back(d["Name"]);
  CHECK(names == std::vector<std::string>{"sr0", "vda", "vda1", "vda2", "vda10", "vdb", "vdc", "vdd"});
  const auto& vdc = json[6];
  CHECK(vdc.size() == 19);
  CHECK(vdc["Node"] == "/dev/vdc");
  CHECK(vdc["Major"] == 254);
  CHECK(vdc["Size"] == 1073741824);
  CHECK(vdc["Removable"] == false);
  CHECK(vdc["BtrfsDevid"] == 2);
  CHECK(vdc["BtrfsDevices"] == 2);
  CHECK(vdc["Tags"] == Json{{"LABEL", "pool"}, {"TYPE", "btrfs"}, {"UUID", pool_uuid}});
  CHECK(json[0]["Label"] == "evil\x1b[2J");  // JSON carries the raw value
}

TEST_CASE("resolve prints the node", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto plain = run(bus, &fake, {"resolve", "LABEL=root"});
  CHECK(plain->status == 0);
  CHECK(plain->out == "/dev/vda1\n");
  CHECK(plain->err.empty());
  auto json = run(bus, &fake, {"resolve", "--json", root_uuid});
  CHECK(json->status == 0);
  CHECK(Json::parse(json->out) == Json{{"spec", root_uuid}, {"node", "/dev/vda1"}});
}

TEST_CASE("resolve reports NotFound, Ambiguous and InvalidArgs", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto missing = run(bus, &fake, {"resolve", "LABEL=nope"});
  CHECK(missing->status == 1);
  CHECK(missing->out.empty());
  CHECK(missing->err == "diskgatectl: no device matches LABEL=nope\n");

  auto several = run(bus, &fake, {"resolve", "LABEL=pool"});
  CHECK(several->status == 1);
  CHECK(several->out.empty());
  CHECK(several->err == "diskgatectl: LABEL=pool matches several devices; use `diskgatectl resolve-all` to list them\n");

  auto invalid = run(bus, &fake, {"resolve", "COLOR=blue"});
  CHECK(invalid->status == 1);
  CHECK(invalid->err == "diskgatectl: invalid device spec \"COLOR=blue\": unknown key COLOR\n");
}

TEST_CASE("resolve-all prints every node, one per line", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto plain = run(bus, &fake, {"resolve-all", std::string("UUID=") + pool_uuid});
  CHECK(plain->status == 0);
  CHECK(plain->out == "/dev/vdb\n/dev/vdc\n");
  auto json = run(bus, &fake, {"resolve-all", "--json", "LABEL=pool"});
  CHECK(json->status == 0);
  CHECK(Json::parse(json->out) == Json::array({"/dev/vdb", "/dev/vdc"}));
  auto none = run(bus, &fake, {"resolve-all", "LABEL=nope"});
  CHECK(none->status == 1);
  CHECK(none->out.empty());
  CHECK(none->err == "diskgatectl: no device matches LABEL=nope\n");
}

TEST_CASE("fs shows the filesystem dictionary", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto plain = run(bus, &fake, {"fs", half_uuid});
  CHECK(plain->status == 0);
  CHECK(plain->out ==
        "UUID:           11111111-2222-4333-8444-555555555555\n"
        "Type:           btrfs\n"
        "Label:          half\n"
        "Complete:       no (1 of 2 devices present)\n"
        "Devices:        /dev/vdd\n"
        "Missing devids: 2\n"
        "Conflicts:      devid 2 is missing\n"
        "Mount data:     device=/dev/vdd\n");

  auto pool = run(bus, &fake, {"fs", pool_uuid});
  CHECK(pool->status == 0);
  CHECK(pool->out ==
        "UUID:           9d7c6b5a-4e3f-4a2b-8c1d-0e9f8a7b6c5d\n"
        "Type:           btrfs\n"
        "Label:          pool\n"
        "Complete:       yes (2 of 2 devices present)\n"
        "Devices:        /dev/vdb\n"
        "                /dev/vdc\n"
        "Missing devids: -\n"
        "Conflicts:      -\n"
        "Mount data:     device=/dev/vdb,device=/dev/vdc\n");

  auto json = run(bus, &fake, {"fs", "--json", half_uuid});
  CHECK(json->status == 0);
  CHECK(Json::parse(json->out) == Json{{"type", "btrfs"},
                                       {"label", "half"},
                                       {"expected", 2},
                                       {"present", 1},
                                       {"devices", {"/dev/vdd"}},
                                       {"missing_devids", {2}},
                                       {"complete", false},
                                       {"conflicts", {"devid 2 is missing"}},
                                       {"mount_data", "device=/dev/vdd"}});

  auto missing = run(bus, &fake, {"fs", "00000000-0000-0000-0000-000000000000"});
  CHECK(missing->status == 1);
  CHECK(missing->out.empty());
  CHECK(missing->err == "diskgatectl: no filesystem has UUID 00000000-0000-0000-0000-000000000000\n");
}

TEST_CASE("wait returns at once when the spec already resolves", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto ctl = run(bus, &fake, {"wait", "LABEL=root", "--timeout", "5"});
  CHECK(ctl->status == 0);
  CHECK(ctl->out == "/dev/vda1\n");
  CHECK(fake.resolve_calls == 1);
}

TEST_CASE("wait returns when DeviceAdded arrives 200 ms later", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  Ctl ctl({"--bus", bus.address(), "wait", "LABEL=late", "--timeout", "10"});
  bool scheduled = false;
  fake.on_resolve = [&] {
    if (scheduled) return;
    scheduled = true;
    ctl.after(200ms, [&] { fake.add(device("vde", "ext4", "late", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")); });
  };
  ctl.run(&fake);
  INFO("stderr: " << ctl.err);
  CHECK(ctl.status == 0);
  CHECK(ctl.out == "/dev/vde\n");
  CHECK(ctl.err.empty());
  CHECK(ctl.seconds >= 0.2);
  CHECK(ctl.seconds < 5);
  // One look at the start and one on the signal: no polling in between.
  CHECK(fake.resolve_calls == 2);
}

TEST_CASE("wait sees a device added while its first Resolve is answered", "[bus]") {
  // The signal leaves the fake before the NotFound reply: only a client
  // that subscribed before calling Resolve can see it.
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  fake.on_resolve = [&] {
    if (fake.resolve_calls == 1) fake.add(device("vde", "ext4", "late", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"));
  };
  auto ctl = run(bus, &fake, {"wait", "LABEL=late", "--timeout", "5", "--json"});
  CHECK(ctl->status == 0);
  CHECK(Json::parse(ctl->out) == Json{{"spec", "LABEL=late"}, {"node", "/dev/vde"}});
  CHECK(ctl->seconds < 4);
}

TEST_CASE("wait re-checks on DeviceChanged", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  Ctl ctl({"--bus", bus.address(), "wait", "LABEL=renamed", "--timeout", "10"});
  ctl.after(200ms, [&] {
    auto& d = fake.devices[1];  // vda, unprobed until now
    d = device("vda", "ext4", "renamed", "cccccccc-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    fake.emit_device("DeviceChanged", d);
  });
  ctl.run(&fake);
  INFO("stderr: " << ctl.err);
  CHECK(ctl.status == 0);
  CHECK(ctl.out == "/dev/vda\n");
}

TEST_CASE("wait --timeout 1 gives up after a second with exit 1", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto ctl = run(bus, &fake, {"wait", "LABEL=never", "--timeout", "1"});
  CHECK(ctl->status == 1);
  CHECK(ctl->out.empty());
  CHECK(ctl->err == "diskgatectl: timed out after 1 s waiting for LABEL=never\n");
  CHECK(ctl->seconds >= 1.0);
  CHECK(ctl->seconds < 3.0);
  CHECK(fake.resolve_calls == 1);  // no busy polling
}

TEST_CASE("wait --complete returns when FilesystemComplete arrives", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  // By label: the client resolves vdd and asks for its filesystem's UUID.
  Ctl ctl({"--bus", bus.address(), "wait", "--complete", "LABEL=half", "--timeout", "10"});
  bool scheduled = false;
  fake.on_get_filesystem = [&] {
    if (scheduled) return;
    scheduled = true;
    ctl.after(200ms, [&] {
      fake.devices.push_back(device("vdf", "btrfs", "half", half_uuid, "identified", 2, 2));
      fake.filesystems[half_uuid] = filesystem("btrfs", "half", 2, {"/dev/vdd", "/dev/vdf"}, {});
      fake.emit_string("FilesystemComplete", half_uuid);
    });
  };
  ctl.run(&fake);
  INFO("stderr: " << ctl.err);
  CHECK(ctl.status == 0);
  CHECK(ctl.out == "/dev/vdd\n/dev/vdf\n");
  CHECK(ctl.err.empty());
  CHECK(ctl.seconds >= 0.2);
  CHECK(fake.filesystem_calls == 2);
}

TEST_CASE("wait --complete by UUID accepts several matching devices", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  // UUID=pool names two devices (Ambiguous for Resolve) but one filesystem.
  auto ctl = run(bus, &fake, {"wait", "--complete", "--json", std::string("UUID=") + pool_uuid, "--timeout", "5"});
  CHECK(ctl->status == 0);
  auto json = Json::parse(ctl->out);
  CHECK(json["uuid"] == pool_uuid);
  CHECK(json["node"].is_null());
  CHECK(json["filesystem"]["devices"] == Json::array({"/dev/vdb", "/dev/vdc"}));
  CHECK(json["filesystem"]["complete"] == true);
}

TEST_CASE("wait --complete times out on an incomplete filesystem", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto ctl = run(bus, &fake, {"wait", "--complete", half_uuid, "--timeout", "1"});
  CHECK(ctl->status == 1);
  CHECK(ctl->out.empty());
  CHECK(ctl->err == std::string("diskgatectl: timed out after 1 s waiting for the filesystem of ") + half_uuid +
                        " to be complete (1 of 2 devices present)\n");
  CHECK(fake.filesystem_calls == 1);
}

TEST_CASE("wait without --complete fails on an ambiguous spec", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  auto ctl = run(bus, &fake, {"wait", "LABEL=pool", "--timeout", "5"});
  CHECK(ctl->status == 1);
  CHECK(ctl->err == "diskgatectl: LABEL=pool matches several devices; use `diskgatectl resolve-all` to list them\n");
  CHECK(ctl->seconds < 4);
}

namespace {

// Emits a marker until the monitor prints it (so it is surely subscribed),
// then `sequence`; stops the monitor with `stop_signal` once `last` shows.
void run_monitor(Ctl& ctl, FakeDaemon& fake, const std::string& marker_line, const std::function<void()>& sequence,
                 const std::string& last, int stop_signal) {
  std::function<void()> ping = [&] {
    if (ctl.out.find(marker_line) != std::string::npos) return;
    fake.emit_string("FilesystemIncomplete", "marker");
    ctl.after(100ms, ping);
  };
  ctl.after(0ms, ping);
  bool sent = false, stopped = false;
  ctl.on_output = [&] {
    if (!sent && ctl.out.find(marker_line) != std::string::npos) {
      sent = true;
      ctl.after(0ms, sequence);
    }
    if (sent && !stopped && ctl.out.find(last) != std::string::npos) {
      stopped = true;
      ctl.signal(stop_signal);
    }
  };
  ctl.run(&fake);
}

void emit_sequence(FakeDaemon& fake) {
  fake.emit_device("DeviceAdded", device("vde", "ext4", "new disk", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"));
  fake.emit_device("DeviceChanged", device("vdf", "", "", "", "unidentified"));
  fake.emit_string("DeviceRemoved", "/dev/vde");
  fake.emit_string("FilesystemComplete", pool_uuid);
  fake.emit_string("FilesystemIncomplete", half_uuid);
}

}  // namespace

TEST_CASE("monitor prints one line per signal until SIGTERM", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  Ctl ctl({"--bus", bus.address(), "monitor"});
  run_monitor(ctl, fake, "incomplete marker\n", [&] { emit_sequence(fake); },
              std::string("incomplete ") + half_uuid + "\n", SIGTERM);
  CHECK(ctl.status == 0);
  CHECK(ctl.err.empty());
  // Drop the marker lines; the rest must be exactly the sequence.
  std::string rest = ctl.out.substr(ctl.out.rfind("incomplete marker\n") + std::strlen("incomplete marker\n"));
  CHECK(rest ==
        "added vde /dev/vde ext4 aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee new disk\n"
        "changed vdf /dev/vdf - - -\n"
        "removed /dev/vde\n"
        "complete 9d7c6b5a-4e3f-4a2b-8c1d-0e9f8a7b6c5d\n"
        "incomplete 11111111-2222-4333-8444-555555555555\n");
}

TEST_CASE("monitor --json prints one object per line until SIGINT", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  Ctl ctl({"--bus", bus.address(), "monitor", "--json"});
  run_monitor(ctl, fake, R"({"event":"incomplete","uuid":"marker"})", [&] { emit_sequence(fake); },
              std::string(R"({"event":"incomplete","uuid":")") + half_uuid, SIGINT);
  CHECK(ctl.status == 0);
  std::vector<Json> events;
  std::istringstream lines(ctl.out);
  for (std::string line; std::getline(lines, line);) {
    auto json = Json::parse(line);
    if (json.value("uuid", "") != "marker") events.push_back(json);
  }
  REQUIRE(events.size() == 5);
  CHECK(events[0]["event"] == "added");
  CHECK(events[0]["device"]["Label"] == "new disk");
  CHECK(events[0]["device"]["Node"] == "/dev/vde");
  CHECK(events[0]["device"].size() == 19);
  CHECK(events[1]["event"] == "changed");
  CHECK(events[1]["device"]["State"] == "unidentified");
  CHECK(events[2] == Json{{"event", "removed"}, {"node", "/dev/vde"}});
  CHECK(events[3] == Json{{"event", "complete"}, {"uuid", pool_uuid}});
  CHECK(events[4] == Json{{"event", "incomplete"}, {"uuid", half_uuid}});
}

TEST_CASE("every command says so when diskgated is not running", "[bus]") {
  PrivateBus bus;  // nobody owns org.diskgate1 on it
  const std::string expected = "diskgatectl: diskgated is not running on the bus at " + bus.address() +
                               " (nothing owns org.diskgate1)\n";
  for (const auto& args : std::vector<std::vector<std::string>>{{"list"},
                                                                {"resolve", "LABEL=root"},
                                                                {"resolve-all", "LABEL=root"},
                                                                {"fs", root_uuid},
                                                                {"wait", "LABEL=root", "--timeout", "5"},
                                                                {"wait", "--complete", root_uuid},
                                                                {"monitor"},
                                                                {"list", "--json"}}) {
    INFO(args[0]);
    auto ctl = run(bus, nullptr, args);
    CHECK(ctl->status == 3);
    CHECK(ctl->out.empty());
    CHECK(ctl->err == expected);
  }
}

TEST_CASE("a bus that cannot be reached gives exit 3", "[bus]") {
  Ctl ctl({"--bus", "unix:path=/nonexistent/diskgate-test-bus", "list"});
  ctl.run(nullptr);
  CHECK(ctl.status == 3);
  CHECK(ctl.out.empty());
  CHECK(ctl.err.rfind("diskgatectl: cannot connect to the bus at unix:path=/nonexistent/diskgate-test-bus (", 0) == 0);
  CHECK(ctl.err.find("diskgated is not running there\n") != std::string::npos);
}

TEST_CASE("--bus session uses DBUS_SESSION_BUS_ADDRESS, and --bus may follow the command", "[bus]") {
  PrivateBus bus;
  FakeDaemon fake(bus.address());
  Ctl ctl({"resolve", "LABEL=EFI", "--bus", "session"}, {{"DBUS_SESSION_BUS_ADDRESS", bus.address()}});
  ctl.run(&fake);
  INFO("stderr: " << ctl.err);
  CHECK(ctl.status == 0);
  CHECK(ctl.out == "/dev/vda10\n");
}

TEST_CASE("usage errors exit 4", "[bus]") {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--bus", "nonsense", "list"},
                                                                {"resolve"},
                                                                {"wait", "LABEL=x", "--timeout", "-1"},
                                                                {"list", "extra"}}) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    INFO(joined);
    Ctl ctl(args);
    ctl.run(nullptr);
    CHECK(ctl.status == 4);
    CHECK(ctl.out.empty());
    CHECK(ctl.err.rfind("diskgatectl: ", 0) == 0);
  }
}
