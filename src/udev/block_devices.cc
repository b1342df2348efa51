#include "udev/block_devices.h"

#include <libudev.h>
#include <poll.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "probe/sysfs.h"

namespace diskgate::udev {
namespace {

std::string errno_text(int err) {
  return std::generic_category().message(err < 0 ? -err : err);
}

struct UdevUnref {
  void operator()(::udev* u) const { udev_unref(u); }
  void operator()(udev_monitor* m) const { udev_monitor_unref(m); }
  void operator()(udev_enumerate* e) const { udev_enumerate_unref(e); }
  void operator()(udev_device* d) const { udev_device_unref(d); }
};
template <typename T>
using Ref = std::unique_ptr<T, UdevUnref>;

std::string str(const char* s) {
  return s ? std::string(s) : std::string();
}

// The last path component, with the kernel's '!' for '/' undone as udev
// does for sysname ("cciss!c0d0" -> "cciss/c0d0").
std::string kernel_name(std::string_view path) {
  auto slash = path.rfind('/');
  std::string name(slash == std::string_view::npos ? path : path.substr(slash + 1));
  for (char& c : name)
    if (c == '!') c = '/';
  return name;
}

std::string_view dirname(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

// What the device itself says (uevent properties, whichever source); sysfs
// only when the device still exists.
devices::KernelDevice kernel_device(udev_device* dev, bool sysfs_present) {
  devices::KernelDevice out;
  out.syspath = str(udev_device_get_syspath(dev));
  const char* sysname = udev_device_get_sysname(dev);
  out.name = sysname ? std::string(sysname) : kernel_name(out.syspath);
  const char* node = udev_device_get_devnode(dev);
  out.node = node ? std::string(node) : "/dev/" + out.name;
  dev_t devnum = udev_device_get_devnum(dev);
  out.major = major(devnum);
  out.minor = minor(devnum);
  // A partition's directory sits inside its disk's in sysfs, so DEVPATH
  // names the parent even after removal.
  bool partition = str(udev_device_get_devtype(dev)) == "partition";
  std::string disk_dir = partition ? std::string(dirname(out.syspath)) : out.syspath;
  if (partition) out.parent = kernel_name(disk_dir);
  if (sysfs_present) {
    // The size attribute counts 512-byte sectors whatever the logical block size.
    out.size_bytes = probe::read_sysfs_number(out.syspath + "/size").value_or(0) * 512;
    out.removable = probe::read_sysfs_number(disk_dir + "/removable").value_or(0) != 0;
  }
  return out;
}

Action parse_action(std::string_view action) {
  if (action == "add") return Action::add;
  if (action == "change") return Action::change;
  if (action == "remove") return Action::remove;
  return Action::other;
}

bool readable_now(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  for (;;) {
    int r = poll(&pfd, 1, 0);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

}  // namespace

std::optional<SourceMode> parse_source_mode(std::string_view text) {
  if (text == "auto") return SourceMode::automatic;
  if (text == "udev") return SourceMode::udev;
  if (text == "kernel") return SourceMode::kernel;
  return std::nullopt;
}

std::string_view to_string(UeventSource source) {
  return source == UeventSource::udev ? "udev" : "kernel";
}

UeventSource choose_source(SourceMode mode, bool udevd_running) {
  switch (mode) {
    case SourceMode::udev:
      return UeventSource::udev;
    case SourceMode::kernel:
      return UeventSource::kernel;
    case SourceMode::automatic:
      break;
  }
  return udevd_running ? UeventSource::udev : UeventSource::kernel;
}

namespace {
bool udevd_listens(const std::string& control) {
  sockaddr_un address{};
  if (control.size() >= sizeof address.sun_path) return false;
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, control.c_str(), control.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool listening = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return listening;
}
}  // namespace

UeventSource choose_source(SourceMode mode, const std::string& udevd_control) {
  // udevd never removes its control socket, so its presence proves nothing:
  // only a socket that accepts a connection means udevd is running.
  return choose_source(mode, udevd_listens(udevd_control));
}

struct BlockDevices::Impl {
  UeventSource source;
  Ref<::udev> context;  // ::udev: our namespace shadows the C struct
  Ref<udev_monitor> monitor;
  int fd = -1;

  [[noreturn]] void fail(const std::string& what, int err) const {
    throw UdevError("udev monitor for source " + std::string(to_string(source)) + ": " + what +
                    ": " + errno_text(err));
  }
};

BlockDevices::BlockDevices(UeventSource source, int receive_buffer_bytes) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.source = source;
  errno = 0;
  m.context.reset(udev_new());
  if (!m.context) m.fail("cannot create libudev context", errno ? errno : ENOMEM);
  errno = 0;
  m.monitor.reset(udev_monitor_new_from_netlink(m.context.get(), source == UeventSource::udev ? "udev" : "kernel"));
  if (!m.monitor) m.fail("cannot open netlink socket", errno ? errno : ENOMEM);
  if (int r = udev_monitor_filter_add_match_subsystem_devtype(m.monitor.get(), "block", nullptr); r < 0)
    m.fail("cannot add subsystem filter", r);
  if (receive_buffer_bytes > 0)
    if (int r = udev_monitor_set_receive_buffer_size(m.monitor.get(), receive_buffer_bytes); r < 0)
      m.fail("cannot set receive buffer to " + std::to_string(receive_buffer_bytes) + " bytes", r);
  if (int r = udev_monitor_enable_receiving(m.monitor.get()); r < 0) m.fail("cannot enable receiving", r);
  m.fd = udev_monitor_get_fd(m.monitor.get());
  if (m.fd < 0) m.fail("no socket", m.fd);
}

BlockDevices::~BlockDevices() = default;
BlockDevices::BlockDevices(BlockDevices&&) noexcept = default;
BlockDevices& BlockDevices::operator=(BlockDevices&&) noexcept = default;

int BlockDevices::fd() const {
  return impl_->fd;
}

namespace {
std::vector<devices::KernelDevice> enumerate_with(::udev* context) {
  auto fail = [&](const std::string& what, int err) -> void {
    throw UdevError("udev enumeration of block devices: " + what + ": " + errno_text(err));
  };
  errno = 0;
  Ref<udev_enumerate> scan(udev_enumerate_new(context));
  if (!scan) fail("cannot create enumerator", errno ? errno : ENOMEM);
  if (int r = udev_enumerate_add_match_subsystem(scan.get(), "block"); r < 0) fail("cannot add subsystem match", r);
  if (int r = udev_enumerate_scan_devices(scan.get()); r < 0) fail("cannot scan /sys", r);

  std::vector<devices::KernelDevice> out;
  udev_list_entry* entry = nullptr;
  udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(scan.get())) {
    Ref<udev_device> dev(udev_device_new_from_syspath(context, udev_list_entry_get_name(entry)));
    if (!dev) continue;  // removed since the scan
    out.push_back(kernel_device(dev.get(), true));
  }
  return out;
}
}  // namespace

std::vector<devices::KernelDevice> BlockDevices::enumerate() const {
  return enumerate_with(impl_->context.get());
}

std::vector<devices::KernelDevice> enumerate_block_devices() {
  errno = 0;
  Ref<::udev> context(udev_new());
  if (!context) throw UdevError("udev enumeration of block devices: cannot create libudev context: " +
                                errno_text(errno ? errno : ENOMEM));
  return enumerate_with(context.get());
}

Received BlockDevices::receive() {
  Impl& m = *impl_;
  Received out;
  // libudev hands back NULL both for an empty socket (EAGAIN) and for a
  // message it refused (unicast from a stranger, malformed: EAGAIN, EINVAL,
  // ...), so after NULL ask poll() whether more is queued. Anyone may send
  // us junk, so refusals are never fatal; instead each call reads a bounded
  // number of messages and leaves the rest for the next readable fd.
  constexpr int max_messages_per_call = 4096;
  for (int i = 0; i < max_messages_per_call; ++i) {
    errno = 0;
    Ref<udev_device> dev(udev_monitor_receive_device(m.monitor.get()));
    if (!dev) {
      int err = errno;
      if (err == ENOBUFS) {
        out.overflowed = true;  // the kernel dropped messages; the socket goes on
        continue;
      }
      if (err == EBADF || err == ENOTSOCK || err == EFAULT) m.fail("cannot receive", err);
      if (!readable_now(m.fd)) break;
      continue;
    }
    // Kernel messages carry no libudev header, so the socket filter lets
    // every subsystem through: check again here.
    if (str(udev_device_get_subsystem(dev.get())) != "block") continue;
    Uevent event;
    event.action_name = str(udev_device_get_action(dev.get()));
    event.action = parse_action(event.action_name);
    event.device = kernel_device(dev.get(), event.action != Action::remove);
    event.media_change = str(udev_device_get_property_value(dev.get(), "DISK_MEDIA_CHANGE")) == "1";
    out.events.push_back(std::move(event));
  }
  return out;
}

}  // namespace diskgate::udev
