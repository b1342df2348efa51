// The libudev backend: libudev's netlink monitor, for either source (the
// enumeration reads sysfs in both backends: block_devices_sysfs.cc). The
// only file of diskgated that includes <libudev.h>; built only with
// -Dudev=enabled.
#include <libudev.h>
#include <poll.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <utility>

#include "udev/backend.h"

namespace diskgate::udev::detail {
namespace {

struct UdevUnref {
  void operator()(::udev* u) const { udev_unref(u); }
  void operator()(udev_monitor* m) const { udev_monitor_unref(m); }
  void operator()(udev_device* d) const { udev_device_unref(d); }
};
template <typename T>
using Ref = std::unique_ptr<T, UdevUnref>;

std::string str(const char* s) {
  return s ? std::string(s) : std::string();
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
  if (str(udev_device_get_devtype(dev)) == "partition") out.parent = kernel_name(dirname(out.syspath));
  if (sysfs_present) read_sysfs_attributes(out);
  return out;
}

bool readable_now(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  for (;;) {
    int r = poll(&pfd, 1, 0);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

class LibudevSource final : public Source {
 public:
  LibudevSource(UeventSource source, int receive_buffer_bytes) : source_(source) {
    errno = 0;
    context_.reset(udev_new());
    if (!context_) fail("cannot create libudev context", errno ? errno : ENOMEM);
    errno = 0;
    monitor_.reset(udev_monitor_new_from_netlink(context_.get(), source == UeventSource::udev ? "udev" : "kernel"));
    if (!monitor_) fail("cannot open netlink socket", errno ? errno : ENOMEM);
    if (int r = udev_monitor_filter_add_match_subsystem_devtype(monitor_.get(), "block", nullptr); r < 0)
      fail("cannot add subsystem filter", r);
    if (receive_buffer_bytes > 0)
      if (int r = udev_monitor_set_receive_buffer_size(monitor_.get(), receive_buffer_bytes); r < 0)
        fail("cannot set receive buffer to " + std::to_string(receive_buffer_bytes) + " bytes", r);
    if (int r = udev_monitor_enable_receiving(monitor_.get()); r < 0) fail("cannot enable receiving", r);
    fd_ = udev_monitor_get_fd(monitor_.get());
    if (fd_ < 0) fail("no socket", fd_);
  }

  int fd() const override { return fd_; }

  Received receive() override {
    Received out;
    // libudev hands back NULL both for an empty socket (EAGAIN) and for a
    // message it refused (unicast from a stranger, malformed: EAGAIN, EINVAL,
    // ...), so after NULL ask poll() whether more is queued. Anyone may send
    // us junk, so refusals are never fatal; instead each call reads a bounded
    // number of messages and leaves the rest for the next readable fd.
    constexpr int max_messages_per_call = 4096;
    for (int i = 0; i < max_messages_per_call; ++i) {
      errno = 0;
      Ref<udev_device> dev(udev_monitor_receive_device(monitor_.get()));
      if (!dev) {
        int err = errno;
        if (err == ENOBUFS) {
          out.overflowed = true;  // the kernel dropped messages; the socket goes on
          continue;
        }
        if (err == EBADF || err == ENOTSOCK || err == EFAULT) fail("cannot receive", err);
        if (!readable_now(fd_)) break;
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

 private:
  [[noreturn]] void fail(const std::string& what, int err) const {
    throw UdevError("udev monitor for source " + std::string(to_string(source_)) + ": " + what + ": " +
                    errno_text(err));
  }

  UeventSource source_;
  Ref<::udev> context_;  // ::udev: our namespace shadows the C struct
  Ref<udev_monitor> monitor_;
  int fd_ = -1;
};

}  // namespace

std::unique_ptr<Source> open_libudev(UeventSource source, int receive_buffer_bytes) {
  return std::make_unique<LibudevSource>(source, receive_buffer_bytes);
}

}  // namespace diskgate::udev::detail
