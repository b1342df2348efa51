// The sysfs backend: enumeration from /sys/class/block and hotplug from our
// own NETLINK_KOBJECT_UEVENT socket on the kernel's group (1). No libudev:
// this is what a static build (gokrazy) runs. It gives the same KernelDevice
// values as the libudev backend (tests/udev/block_devices_test.cc compares
// the two enumerations on this machine).
#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "udev/backend.h"
#include "udev/kernel_uevent.h"

namespace diskgate::udev::detail {
namespace {

constexpr unsigned kernel_group = 1;  // udevd rebroadcasts on 2, with its own header

// The value of KEY in a sysfs uevent file ("KEY=VALUE" lines); "" if absent.
std::string uevent_value(std::string_view text, std::string_view key) {
  while (!text.empty()) {
    auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == '=')
      return std::string(line.substr(key.size() + 1));
    if (newline == std::string_view::npos) break;
    text.remove_prefix(newline + 1);
  }
  return {};
}

// A number of a uevent file (MAJOR, MINOR); nullopt when missing or bad.
std::optional<unsigned> uevent_number(std::string_view text, std::string_view key) {
  std::string digits = uevent_value(text, key);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return value;
}

// The device whose sysfs directory is `syspath`; nullopt when it went away
// meanwhile (or is not a device). The directory is opened once, so that
// each attribute costs one lookup.
std::optional<devices::KernelDevice> sysfs_device(std::string syspath) {
  int dir_fd = ::open(syspath.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return std::nullopt;
  std::optional<devices::KernelDevice> out;
  auto uevent = read_attribute_at(dir_fd, "uevent");
  auto major = uevent ? uevent_number(*uevent, "MAJOR") : std::nullopt;
  auto minor = uevent ? uevent_number(*uevent, "MINOR") : std::nullopt;
  if (major && minor) {
    devices::KernelDevice& device = out.emplace();
    device.syspath = std::move(syspath);
    device.major = *major;
    device.minor = *minor;
    device.name = kernel_name(device.syspath);
    // libudev's devnode: /dev/ + DEVNAME (which may hold a directory).
    std::string devname = uevent_value(*uevent, "DEVNAME");
    device.node = "/dev/" + (safe_path(devname, false) ? devname : device.name);
    if (uevent_value(*uevent, "DEVTYPE") == "partition") device.parent = kernel_name(dirname(device.syspath));
    read_sysfs_attributes_at(dir_fd, device);
  }
  ::close(dir_fd);
  return out;
}

// `target`, a relative symlink in the directory `dir` (sysfs links are
// relative: "../../devices/virtual/block/loop0"), as an absolute path.
std::string resolve_link(std::string dir, std::string_view target) {
  while (target.starts_with("../")) {
    dir.resize(dir.rfind('/'));
    target.remove_prefix(3);
  }
  return dir + "/" + std::string(target);
}

class KernelNetlink final : public Source {
 public:
  explicit KernelNetlink(int receive_buffer_bytes) {
    fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
    if (fd_ < 0) fail("cannot open netlink socket", errno);
    try {
      if (receive_buffer_bytes > 0) {
        // Past net.core.rmem_max only with CAP_NET_ADMIN (FORCE); without
        // it, as much as the limit allows.
        if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer_bytes, sizeof receive_buffer_bytes) < 0 &&
            ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes) < 0)
          fail("cannot set receive buffer to " + std::to_string(receive_buffer_bytes) + " bytes", errno);
      }
      int on = 1;
      if (::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) fail("cannot ask for credentials", errno);
      sockaddr_nl address{};
      address.nl_family = AF_NETLINK;
      address.nl_groups = kernel_group;
      if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0)
        fail("cannot bind to the kernel's uevent group", errno);
    } catch (...) {
      ::close(fd_);
      throw;
    }
  }
  ~KernelNetlink() override { ::close(fd_); }

  int fd() const override { return fd_; }
  Received receive() override {
    Received out;
    // Bounded per call, as the libudev backend: a flood cannot hold the
    // caller's loop, the fd stays readable for the rest.
    constexpr int max_messages_per_call = 4096;
    for (int i = 0; i < max_messages_per_call; ++i) {
      alignas(std::max_align_t) char buffer[max_message_bytes];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
      sockaddr_nl sender{};
      iovec iov{buffer, sizeof buffer};
      msghdr message{};
      message.msg_name = &sender;
      message.msg_namelen = sizeof sender;
      message.msg_iov = &iov;
      message.msg_iovlen = 1;
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(fd_, &message, 0);
      if (n < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == ENOBUFS) {
          out.overflowed = true;  // the kernel dropped messages; the socket goes on
          continue;
        }
        if (err == EBADF || err == ENOTSOCK || err == EFAULT) fail("cannot receive", err);
        break;  // EAGAIN: drained (or a transient error: the fd stays readable)
      }
      if (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) continue;
      if (!from_kernel(message, sender)) continue;
      auto parsed = parse_kernel_uevent(std::string_view(buffer, static_cast<std::size_t>(n)));
      if (!parsed || parsed->subsystem != "block") continue;
      out.events.push_back(to_uevent(*parsed));
    }
    return out;
  }

 private:
  // The kernel sends as port 0, to group 1, with credentials pid 0 uid 0.
  // Anyone else (a root process multicasting to group 1 or unicasting to
  // us) has a port of its own.
  static bool from_kernel(msghdr& message, const sockaddr_nl& sender) {
    if (message.msg_namelen != sizeof sender || sender.nl_family != AF_NETLINK) return false;
    if (sender.nl_pid != 0 || sender.nl_groups != kernel_group) return false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS || c->cmsg_len != CMSG_LEN(sizeof(ucred)))
        continue;
      ucred credentials;
      std::memcpy(&credentials, CMSG_DATA(c), sizeof credentials);
      return credentials.pid == 0 && credentials.uid == 0;
    }
    return false;  // no credentials: not provably the kernel
  }

  static Uevent to_uevent(const KernelUevent& message) {
    Uevent event;
    event.action_name = message.action;
    event.action = parse_action(message.action);
    event.media_change = message.disk_media_change;
    devices::KernelDevice& device = event.device;
    device.syspath = "/sys" + message.devpath;
    device.name = kernel_name(message.devpath);
    device.node = "/dev/" + (message.devname.empty() ? device.name : message.devname);
    device.major = message.major;
    device.minor = message.minor;
    // A partition's directory sits inside its disk's, so DEVPATH names the
    // parent even after removal.
    if (message.devtype == "partition") device.parent = kernel_name(dirname(message.devpath));
    // On remove, sysfs is gone: size 0, not removable.
    if (event.action != Action::remove) read_sysfs_attributes(device);
    return event;
  }

  [[noreturn]] static void fail(const std::string& what, int err) {
    throw UdevError("udev monitor for source kernel: " + what + ": " + errno_text(err));
  }

  int fd_ = -1;
};

}  // namespace

std::unique_ptr<Source> open_kernel_netlink(int receive_buffer_bytes) {
  return std::make_unique<KernelNetlink>(receive_buffer_bytes);
}

std::vector<devices::KernelDevice> enumerate_sysfs(const std::string& sysfs_root) {
  auto fail = [](const std::string& what, int err) -> void {
    throw UdevError("udev enumeration of block devices: cannot read " + what + ": " + errno_text(err));
  };
  // Canonical once (a root given through a symlink), so that each device's
  // link resolves by string.
  std::string class_dir = sysfs_root + "/class/block";
  char* real = ::realpath(class_dir.c_str(), nullptr);
  if (!real) fail(class_dir, errno);
  class_dir = real;
  std::free(real);
  DIR* dir = ::opendir(class_dir.c_str());
  if (!dir) fail(class_dir, errno);
  std::vector<devices::KernelDevice> out;
  errno = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    char target[PATH_MAX];
    ssize_t n = ::readlinkat(::dirfd(dir), entry->d_name, target, sizeof target - 1);
    if (n < 0) continue;  // removed since the directory was read, or not a link
    if (auto device = sysfs_device(resolve_link(class_dir, std::string_view(target, static_cast<std::size_t>(n)))))
      out.push_back(std::move(*device));
    errno = 0;
  }
  int err = errno;
  ::closedir(dir);
  if (err) fail(class_dir, err);
  // As libudev lists them: by syspath, so a disk comes before its partitions.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.syspath < b.syspath; });
  return out;
}

}  // namespace diskgate::udev::detail
