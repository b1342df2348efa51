// BlockDevices against the real kernel: loop devices attached, partitioned,
// detached, and uevents from the kernel directly or through a real
// systemd-udevd (tests tagged [udevd]). Kernel-source cases run once per
// backend this build has (libudev and sysfs, or sysfs alone); [libudev]
// cases need the libudev backend. Other processes on the machine may use
// loop devices too, so every check looks only at our own devices.
#include "udev/block_devices.h"

#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <sstream>

#include "udev/support.h"

#if DISKGATE_HAVE_LIBUDEV
#include <libudev.h>
#include <sys/sysmacros.h>
#endif

namespace diskgate::udev {
namespace {

using namespace std::chrono_literals;
using devices::KernelDevice;
using testing::LoopDevice;
using testing::TempDir;

constexpr auto event_timeout = 10s;

// The backends this build has; kernel-source cases run on each.
std::vector<Backend> backends() {
  if (have_libudev()) return {Backend::libudev, Backend::sysfs};
  return {Backend::sysfs};
}

#define FOR_EACH_BACKEND(backend)                            \
  const Backend backend = GENERATE(from_range(backends())); \
  INFO("backend " << to_string(backend))

std::string describe(const std::vector<Uevent>& events) {
  std::ostringstream out;
  for (const auto& e : events)
    out << e.action_name << " " << e.device.name << " " << e.device.major << ":" << e.device.minor
        << " size=" << e.device.size_bytes << " parent=" << e.device.parent << "\n";
  return out.str();
}

// Receives until an event satisfies `match` or the timeout passes; every
// event seen is appended to `seen` (for assertions and failure messages).
std::optional<Uevent> wait_for(BlockDevices& monitor, const std::function<bool(const Uevent&)>& match,
                               std::vector<Uevent>& seen, bool* overflowed = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + event_timeout;
  while (testing::wait_readable(monitor.fd(), deadline)) {
    Received got = monitor.receive();
    if (overflowed && got.overflowed) *overflowed = true;
    // Keep the whole batch: events after the match are for later waits.
    std::size_t first_new = seen.size();
    seen.insert(seen.end(), got.events.begin(), got.events.end());
    auto it = std::find_if(seen.begin() + static_cast<std::ptrdiff_t>(first_new), seen.end(), match);
    if (it != seen.end()) return *it;
  }
  return std::nullopt;
}

// The first event already seen that satisfies `match`, else waits for one.
std::optional<Uevent> seen_or_wait(BlockDevices& monitor, const std::function<bool(const Uevent&)>& match,
                                   std::vector<Uevent>& seen) {
  auto it = std::find_if(seen.begin(), seen.end(), match);
  if (it != seen.end()) return *it;
  return wait_for(monitor, match, seen);
}

auto is(Action action, const std::string& name) {
  return [action, name](const Uevent& e) { return e.action == action && e.device.name == name; };
}

const KernelDevice* find(const std::vector<KernelDevice>& list, const std::string& name) {
  auto it = std::find_if(list.begin(), list.end(), [&](const KernelDevice& d) { return d.name == name; });
  return it == list.end() ? nullptr : &*it;
}

void check_identity(const KernelDevice& device, const std::string& node) {
  auto [major, minor] = testing::device_number(node);
  CHECK(device.node == node);
  CHECK(device.major == major);
  CHECK(device.minor == minor);
}

// The behaviours shared by both sources, run once per source.
void attach_and_detach_send_change(UeventSource source, Backend backend) {
  TempDir dir;
  testing::make_image(dir / "disk.img", 3 << 20);
  BlockDevices monitor(source, 0, backend);
  std::vector<Uevent> seen;

  LoopDevice loop(dir / "disk.img");
  auto attached = wait_for(monitor, is(Action::change, loop.name()), seen);
  INFO("events seen:\n" << describe(seen));
  REQUIRE(attached);
  check_identity(attached->device, loop.node());
  CHECK(attached->device.size_bytes == 3 << 20);
  CHECK(attached->device.parent.empty());
  CHECK(attached->device.syspath.ends_with("/block/" + loop.name()));
  CHECK_FALSE(attached->media_change);

  // Attaching sent all its uevents before losetup returned, so they are
  // queued now; drain them so the next change is the detach's own.
  monitor.receive();
  loop.detach();
  auto detached = wait_for(monitor, is(Action::change, loop.name()), seen);
  INFO("events seen:\n" << describe(seen));
  REQUIRE(detached);
  // Not checking size 0: someone else may attach this free loop device
  // before we read sysfs.
  CHECK(detached->device.major == attached->device.major);
  CHECK(detached->device.minor == attached->device.minor);
}

void partscan_sends_add_for_partitions(UeventSource source, Backend backend) {
  TempDir dir;
  testing::make_gpt_image(dir / "gpt.img");
  BlockDevices monitor(source, 0, backend);
  std::vector<Uevent> seen;

  LoopDevice loop(dir / "gpt.img", /*partscan=*/true);
  if (loop.partitions_by_partx())
    WARN("the kernel's partition scan found no GPT (parser not built in); partx --add created the partitions");
  auto p1 = seen_or_wait(monitor, is(Action::add, loop.name() + "p1"), seen);
  auto p2 = p1 ? seen_or_wait(monitor, is(Action::add, loop.name() + "p2"), seen) : std::nullopt;
  INFO("events seen:\n" << describe(seen));
  REQUIRE(p1);
  REQUIRE(p2);
  check_identity(p1->device, loop.node() + "p1");
  check_identity(p2->device, loop.node() + "p2");
  CHECK(p1->device.parent == loop.name());
  CHECK(p2->device.parent == loop.name());
  CHECK(p1->device.size_bytes == testing::gpt_part1_bytes);
  CHECK(p2->device.size_bytes == testing::gpt_part2_bytes);
  CHECK(p1->device.syspath.ends_with("/block/" + loop.name() + "/" + loop.name() + "p1"));
}

void uevent_remove_arrives_as_remove(UeventSource source, Backend backend) {
  TempDir dir;
  testing::make_gpt_image(dir / "gpt.img");
  LoopDevice loop(dir / "gpt.img", /*partscan=*/true);
  const std::string part = loop.name() + "p1";
  auto [major, minor] = testing::device_number("/dev/" + part);
  BlockDevices monitor(source, 0, backend);
  std::vector<Uevent> seen;

  // Only the message: the partition stays, so the node can be compared.
  testing::write_file("/sys/block/" + loop.name() + "/" + part + "/uevent", "remove");
  auto removed = wait_for(monitor, is(Action::remove, part), seen);
  INFO("events seen:\n" << describe(seen));
  REQUIRE(removed);
  CHECK(removed->action_name == "remove");
  CHECK(removed->device.node == "/dev/" + part);
  CHECK(removed->device.major == major);
  CHECK(removed->device.minor == minor);
  CHECK(removed->device.parent == loop.name());
  CHECK(removed->device.size_bytes == 0);  // sysfs is not read on remove
}

void detach_removes_partitions(UeventSource source, Backend backend) {
  TempDir dir;
  testing::make_gpt_image(dir / "gpt.img");
  LoopDevice loop(dir / "gpt.img", /*partscan=*/true);
  auto p1_number = testing::device_number(loop.node() + "p1");
  auto p2_number = testing::device_number(loop.node() + "p2");
  BlockDevices monitor(source, 0, backend);
  std::vector<Uevent> seen;

  loop.detach();
  auto p1 = seen_or_wait(monitor, is(Action::remove, loop.name() + "p1"), seen);
  auto p2 = p1 ? seen_or_wait(monitor, is(Action::remove, loop.name() + "p2"), seen) : std::nullopt;
  INFO("events seen:\n" << describe(seen));
  REQUIRE(p1);
  REQUIRE(p2);
  CHECK(std::pair(p1->device.major, p1->device.minor) == p1_number);
  CHECK(std::pair(p2->device.major, p2->device.minor) == p2_number);
  CHECK(p1->device.node == loop.node() + "p1");
  CHECK(p1->device.parent == loop.name());
  CHECK(p2->device.parent == loop.name());
}

}  // namespace

TEST_CASE("source choice: an explicit mode wins, auto follows udevd's control socket", "[source]") {
  CHECK(choose_source(SourceMode::udev, false) == UeventSource::udev);
  CHECK(choose_source(SourceMode::kernel, true) == UeventSource::kernel);
  CHECK(choose_source(SourceMode::automatic, true) == UeventSource::udev);
  CHECK(choose_source(SourceMode::automatic, false) == UeventSource::kernel);

  TempDir dir;
  const std::string control = dir / "control";
  CHECK(choose_source(SourceMode::automatic, control) == UeventSource::kernel);
  // udevd leaves its socket behind when it exits: a file is not enough...
  testing::make_image(control, 0);
  CHECK(choose_source(SourceMode::automatic, control) == UeventSource::kernel);
  // ...only a socket that accepts connections means udevd runs.
  std::filesystem::remove(control);
  int listener = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, control.c_str(), sizeof address.sun_path - 1);
  REQUIRE(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  // Built without libudev, udevd's messages cannot be read: auto is kernel.
  CHECK(choose_source(SourceMode::automatic, control) ==
        (have_libudev() ? UeventSource::udev : UeventSource::kernel));
  CHECK(choose_source(SourceMode::udev, control) == UeventSource::udev);
  CHECK(choose_source(SourceMode::kernel, control) == UeventSource::kernel);
  ::close(listener);
  CHECK(choose_source(SourceMode::automatic, control) == UeventSource::kernel);
}

TEST_CASE("source mode text: auto, udev, kernel and nothing else", "[source]") {
  CHECK(parse_source_mode("auto") == SourceMode::automatic);
  CHECK(parse_source_mode("udev") == SourceMode::udev);
  CHECK(parse_source_mode("kernel") == SourceMode::kernel);
  CHECK_FALSE(parse_source_mode("Kernel"));
  CHECK_FALSE(parse_source_mode(""));
  CHECK(to_string(UeventSource::udev) == "udev");
  CHECK(to_string(UeventSource::kernel) == "kernel");
}

TEST_CASE("enumerate lists an attached loop device with its major:minor and size", "[kernel]") {
  TempDir dir;
  testing::make_image(dir / "disk.img", 3 << 20);
  LoopDevice loop(dir / "disk.img");
  auto list = enumerate_block_devices();  // (the same whatever the backend)
  const KernelDevice* found = find(list, loop.name());
  REQUIRE(found);
  check_identity(*found, loop.node());
  CHECK(found->size_bytes == 3 << 20);
  CHECK(found->parent.empty());
  CHECK(found->syspath == "/sys/devices/virtual/block/" + loop.name());
  CHECK_FALSE(found->removable);
}

TEST_CASE("enumerate lists a partitioned loop device's partitions with their parent", "[kernel]") {
  TempDir dir;
  testing::make_gpt_image(dir / "gpt.img");
  LoopDevice loop(dir / "gpt.img", /*partscan=*/true);
  auto list = enumerate_block_devices();  // (the same whatever the backend)
  const KernelDevice* disk = find(list, loop.name());
  const KernelDevice* p1 = find(list, loop.name() + "p1");
  const KernelDevice* p2 = find(list, loop.name() + "p2");
  REQUIRE(disk);
  REQUIRE(p1);
  REQUIRE(p2);
  CHECK(disk->size_bytes == testing::gpt_image_bytes);
  CHECK(disk->parent.empty());
  check_identity(*p1, loop.node() + "p1");
  check_identity(*p2, loop.node() + "p2");
  CHECK(p1->parent == loop.name());
  CHECK(p2->parent == loop.name());
  CHECK(p1->size_bytes == testing::gpt_part1_bytes);
  CHECK(p2->size_bytes == testing::gpt_part2_bytes);
  CHECK(p1->syspath == disk->syspath + "/" + loop.name() + "p1");
}

TEST_CASE("kernel source: attaching and detaching a loop device send change", "[kernel]") {
  FOR_EACH_BACKEND(backend);
  attach_and_detach_send_change(UeventSource::kernel, backend);
}

TEST_CASE("kernel source: losetup -P sends add for each partition, parent set", "[kernel]") {
  FOR_EACH_BACKEND(backend);
  partscan_sends_add_for_partitions(UeventSource::kernel, backend);
}

TEST_CASE("kernel source: remove written to a partition's uevent file arrives as remove", "[kernel]") {
  FOR_EACH_BACKEND(backend);
  uevent_remove_arrives_as_remove(UeventSource::kernel, backend);
}

TEST_CASE("kernel source: detaching a partitioned loop device removes its partitions", "[kernel]") {
  FOR_EACH_BACKEND(backend);
  detach_removes_partitions(UeventSource::kernel, backend);
}

TEST_CASE("kernel source: uevents of other subsystems are dropped", "[kernel]") {
  TempDir dir;
  testing::make_image(dir / "disk.img", 1 << 20);
  LoopDevice loop(dir / "disk.img");
  FOR_EACH_BACKEND(backend);
  BlockDevices monitor(UeventSource::kernel, 0, backend);
  std::vector<Uevent> seen;

  // /dev/null's device ("mem" subsystem) first, then ours: when ours
  // arrives, the other one has been through receive() already. libudev 252
  // filters in user space too, so this guards the behaviour, not our check.
  testing::write_file("/sys/devices/virtual/mem/null/uevent", "change");
  testing::write_file("/sys/block/" + loop.name() + "/uevent", "change");
  auto ours = wait_for(monitor, is(Action::change, loop.name()), seen);
  INFO("events seen:\n" << describe(seen));
  REQUIRE(ours);
  for (const auto& event : seen) CHECK(event.device.syspath.find("/block/") != std::string::npos);
}

TEST_CASE("kernel source: an overflowing socket buffer is reported, and receiving goes on", "[kernel]") {
  TempDir dir;
  testing::make_image(dir / "disk.img", 1 << 20);
  LoopDevice loop(dir / "disk.img");
  FOR_EACH_BACKEND(backend);
  // The smallest buffer the kernel allows holds a few uevents at most.
  BlockDevices monitor(UeventSource::kernel, /*receive_buffer_bytes=*/1, backend);
  const std::string uevent = "/sys/block/" + loop.name() + "/uevent";
  for (int i = 0; i < 200; ++i) testing::write_file(uevent, "change");

  Received first = monitor.receive();
  CHECK(first.overflowed);
  CHECK(first.events.size() < 200);

  std::vector<Uevent> seen;
  bool overflowed_again = false;
  testing::write_file(uevent, "change");
  auto after = wait_for(monitor, is(Action::change, loop.name()), seen, &overflowed_again);
  INFO("events seen:\n" << describe(seen));
  CHECK(after);
}

TEST_CASE("udev source: attaching and detaching a loop device send change", "[udevd]") {
  TempDir dir;
  testing::Udevd udevd(dir / "udevd.log");
  if (udevd.skip_reason()) SKIP_TEST(*udevd.skip_reason());
  if (!have_libudev()) SKIP_TEST("built without libudev");
  attach_and_detach_send_change(UeventSource::udev, Backend::libudev);
}

TEST_CASE("udev source: losetup -P sends add for each partition, parent set", "[udevd]") {
  TempDir dir;
  testing::Udevd udevd(dir / "udevd.log");
  if (udevd.skip_reason()) SKIP_TEST(*udevd.skip_reason());
  if (!have_libudev()) SKIP_TEST("built without libudev");
  partscan_sends_add_for_partitions(UeventSource::udev, Backend::libudev);
}

TEST_CASE("udev source: remove written to a partition's uevent file arrives as remove", "[udevd]") {
  TempDir dir;
  testing::Udevd udevd(dir / "udevd.log");
  if (udevd.skip_reason()) SKIP_TEST(*udevd.skip_reason());
  if (!have_libudev()) SKIP_TEST("built without libudev");
  uevent_remove_arrives_as_remove(UeventSource::udev, Backend::libudev);
}

TEST_CASE("udev source: detaching a partitioned loop device removes its partitions", "[udevd]") {
  TempDir dir;
  testing::Udevd udevd(dir / "udevd.log");
  if (udevd.skip_reason()) SKIP_TEST(*udevd.skip_reason());
  if (!have_libudev()) SKIP_TEST("built without libudev");
  detach_removes_partitions(UeventSource::udev, Backend::libudev);
}

TEST_CASE("a monitor that cannot be opened throws UdevError naming the source and step", "[source]") {
  // UBSan's vptr check opens a pipe to probe memory: with every descriptor
  // taken it reports the exception under construction as a bad object.
  if (testing::sanitized_run())
    SKIP_TEST("needs every file descriptor taken, and the sanitizer runtime needs free ones (UBSan's vptr check)");
  // No file descriptor left to open: the netlink socket cannot be made.
  struct FdLimit {
    rlimit saved{};
    FdLimit() {
      REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
      int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
      REQUIRE(probe >= 0);
      close(probe);
      rlimit tight = saved;
      tight.rlim_cur = static_cast<rlim_t>(probe);  // fds below `probe` are all in use
      REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    }
    ~FdLimit() { setrlimit(RLIMIT_NOFILE, &saved); }
  };
  FOR_EACH_BACKEND(backend);
  std::string message;
  {
    FdLimit limit;
    try {
      BlockDevices monitor(UeventSource::kernel, 0, backend);
    } catch (const UdevError& e) {
      message = e.what();
    }
  }
  INFO(message);
  CHECK(message.starts_with("udev monitor for source kernel: "));
  CHECK(message.find("Too many open files") != std::string::npos);
}

#if DISKGATE_HAVE_LIBUDEV
// libudev's enumerator, the reference for our enumeration of sysfs: what it
// says of each block device (size and removable are sysfs attributes,
// which ours reads the same way in both backends).
std::vector<KernelDevice> libudev_enumeration() {
  std::vector<KernelDevice> out;
  struct udev* context = udev_new();
  REQUIRE(context);
  struct udev_enumerate* scan = udev_enumerate_new(context);
  REQUIRE(scan);
  REQUIRE(udev_enumerate_add_match_subsystem(scan, "block") >= 0);
  REQUIRE(udev_enumerate_scan_devices(scan) >= 0);
  udev_list_entry* entry = nullptr;
  udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(scan)) {
    udev_device* dev = udev_device_new_from_syspath(context, udev_list_entry_get_name(entry));
    if (!dev) continue;  // removed since the scan
    KernelDevice device;
    device.syspath = udev_device_get_syspath(dev);
    device.name = udev_device_get_sysname(dev);
    const char* node = udev_device_get_devnode(dev);
    device.node = node ? node : "";
    device.major = major(udev_device_get_devnum(dev));
    device.minor = minor(udev_device_get_devnum(dev));
    const char* type = udev_device_get_devtype(dev);
    if (type && std::string(type) == "partition")
      device.parent = udev_device_get_sysname(udev_device_get_parent(dev));
    out.push_back(std::move(device));
    udev_device_unref(dev);
  }
  udev_enumerate_unref(scan);
  udev_unref(context);
  return out;
}
#endif

TEST_CASE("the enumeration of sysfs lists what libudev's enumerator lists, with the same values", "[kernel][libudev]") {
#if DISKGATE_HAVE_LIBUDEV
  TempDir dir;
  testing::make_gpt_image(dir / "gpt.img");
  LoopDevice loop(dir / "gpt.img", /*partscan=*/true);
  // Others may attach or detach loop devices between the two scans: a
  // device listed by one only, or changed between them, is tried again.
  std::vector<KernelDevice> from_libudev, from_sysfs;
  std::string differences;
  for (int attempt = 0; attempt < 5; ++attempt) {
    from_libudev = libudev_enumeration();
    from_sysfs = enumerate_block_devices();
    differences.clear();
    for (const auto& a : from_libudev) {
      const KernelDevice* b = find(from_sysfs, a.name);
      auto text = [](const KernelDevice& d) {
        return d.node + " " + d.syspath + " " + std::to_string(d.major) + ":" + std::to_string(d.minor) +
               " parent=" + d.parent;
      };
      if (!b)
        differences += a.name + " libudev: " + text(a) + "; sysfs: missing\n";
      else if (b->node != a.node || b->syspath != a.syspath || b->major != a.major || b->minor != a.minor ||
               b->parent != a.parent)
        differences += a.name + " libudev: " + text(a) + "; sysfs: " + text(*b) + "\n";
    }
    for (const auto& b : from_sysfs)
      if (!find(from_libudev, b.name)) differences += b.name + " listed by sysfs only\n";
    if (differences.empty()) break;
  }
  INFO("differences:\n" << differences);
  CHECK(differences.empty());
  CHECK(from_libudev.size() == from_sysfs.size());
  for (const std::string& name : {loop.name(), loop.name() + "p1", loop.name() + "p2"}) {
    INFO(name);
    CHECK(find(from_sysfs, name));
  }
  // By syspath, as libudev sorts them: a disk before its partitions.
  std::vector<std::string> order;
  for (const auto& d : from_sysfs) order.push_back(d.syspath);
  CHECK(std::is_sorted(order.begin(), order.end()));
#else
  SKIP_TEST("built without libudev: nothing to compare with");
#endif
}

namespace {
// A netlink uevent socket of our own, to forge messages from.
struct Forger {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
  ~Forger() { if (fd >= 0) ::close(fd); }
  // A well-formed block uevent, sent to `port` (unicast) or to `groups`.
  void send(std::uint32_t port, std::uint32_t groups, const std::string& action, const std::string& devpath) {
    std::string name = devpath.substr(devpath.rfind('/') + 1);
    std::string text = action + "@" + devpath + '\0' + "ACTION=" + action + '\0' + "DEVPATH=" + devpath + '\0' +
                       "SUBSYSTEM=block" + '\0' + "MAJOR=7" + '\0' + "MINOR=999" + '\0' + "DEVNAME=" + name + '\0' +
                       "DEVTYPE=disk" + '\0' + "SEQNUM=1" + '\0';
    sockaddr_nl to{};
    to.nl_family = AF_NETLINK;
    to.nl_pid = port;
    to.nl_groups = groups;
    REQUIRE(::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
            static_cast<ssize_t>(text.size()));
  }
};
}  // namespace

TEST_CASE("kernel source: uevents sent by a process, not the kernel, are dropped", "[kernel]") {
  TempDir dir;
  testing::make_image(dir / "disk.img", 1 << 20);
  LoopDevice loop(dir / "disk.img");
  FOR_EACH_BACKEND(backend);
  BlockDevices monitor(UeventSource::kernel, 0, backend);
  sockaddr_nl ours{};
  socklen_t length = sizeof ours;
  REQUIRE(::getsockname(monitor.fd(), reinterpret_cast<sockaddr*>(&ours), &length) == 0);
  Forger forger;
  REQUIRE(forger.fd >= 0);
  // Unicast to our socket, naming our own loop device: only we receive it.
  forger.send(ours.nl_pid, 0, "add", "/devices/virtual/block/" + loop.name());
  // Multicast to the kernel's group: every listener gets it (udevd and
  // libudev drop it for the sender's port, as we must), so it names a
  // device that does not exist.
  forger.send(0, 1, "add", "/devices/virtual/block/diskgate-forged0");
  // Then a real one: once it is here, the forged ones have been read.
  testing::write_file("/sys/block/" + loop.name() + "/uevent", "change");
  std::vector<Uevent> seen;
  auto real = wait_for(monitor, is(Action::change, loop.name()), seen);
  INFO("events seen:\n" << describe(seen));
  REQUIRE(real);
  for (const auto& event : seen) {
    CHECK(event.device.name != "diskgate-forged0");
    CHECK_FALSE((event.action == Action::add && event.device.name == loop.name()));
  }
}

TEST_CASE("backends refuse what they cannot do", "[source]") {
  try {
    BlockDevices monitor(UeventSource::udev, 0, Backend::sysfs);
    FAIL("the sysfs backend accepted the udev source");
  } catch (const UdevError& e) {
    CHECK(std::string(e.what()).find("reads only the kernel's uevents") != std::string::npos);
  }
  CHECK(default_backend() == (have_libudev() ? Backend::libudev : Backend::sysfs));
  if (!have_libudev()) {
    for (UeventSource source : {UeventSource::udev, UeventSource::kernel}) {
      try {
        BlockDevices monitor(source, 0, Backend::libudev);
        FAIL("a build without libudev opened a libudev monitor");
      } catch (const UdevError& e) {
        CHECK(std::string(e.what()).find("built without libudev") != std::string::npos);
      }
    }
  }
}

}  // namespace diskgate::udev
