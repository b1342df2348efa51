// What both backends share, the source choice, and which backend runs. No
// libudev here: block_devices_libudev.cc is linked only when meson found it
// (DISKGATE_HAVE_LIBUDEV).
#include "udev/block_devices.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <system_error>
#include <utility>

#include "udev/backend.h"

#ifndef DISKGATE_HAVE_LIBUDEV
#define DISKGATE_HAVE_LIBUDEV 0
#endif

namespace diskgate::udev {

namespace detail {

std::string errno_text(int err) {
  return std::generic_category().message(err < 0 ? -err : err);
}

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

Action parse_action(std::string_view action) {
  if (action == "add") return Action::add;
  if (action == "change") return Action::change;
  if (action == "remove") return Action::remove;
  return Action::other;
}

std::optional<std::string> read_attribute_at(int dir_fd, const char* name) {
  int fd;
  do fd = ::openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::nullopt;
  std::string text(4096, '\0');  // a sysfs attribute is at most a page
  ssize_t n;
  do n = ::read(fd, text.data(), text.size());
  while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n < 0) return std::nullopt;
  text.resize(static_cast<std::size_t>(n));
  return text;
}

namespace {
std::uint64_t number_at(int dir_fd, const char* name) {
  auto text = read_attribute_at(dir_fd, name);
  if (!text) return 0;
  std::uint64_t value = 0;
  std::from_chars(text->data(), text->data() + text->size(), value);  // "123\n": up to the newline
  return value;
}
}  // namespace

void read_sysfs_attributes_at(int dir_fd, devices::KernelDevice& device) {
  // The size attribute counts 512-byte sectors whatever the logical block size.
  device.size_bytes = number_at(dir_fd, "size") * 512;
  // A partition's directory sits in its disk's.
  device.removable = number_at(dir_fd, device.parent.empty() ? "removable" : "../removable") != 0;
}

void read_sysfs_attributes(devices::KernelDevice& device) {
  int dir_fd = ::open(device.syspath.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {  // gone meanwhile
    device.size_bytes = 0;
    device.removable = false;
    return;
  }
  read_sysfs_attributes_at(dir_fd, device);
  ::close(dir_fd);
}

#if !DISKGATE_HAVE_LIBUDEV
std::unique_ptr<Source> open_libudev(UeventSource source, int) {
  throw UdevError("udev monitor for source " + std::string(to_string(source)) +
                  ": diskgated was built without libudev (-Dudev=disabled)");
}
#endif

}  // namespace detail

std::string_view to_string(Backend backend) {
  return backend == Backend::libudev ? "libudev" : "sysfs";
}

bool have_libudev() {
  return DISKGATE_HAVE_LIBUDEV;
}

Backend default_backend() {
  return have_libudev() ? Backend::libudev : Backend::sysfs;
}

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
  // Without libudev nothing can read udevd's messages: auto is kernel.
  if (!have_libudev() && mode == SourceMode::automatic) return UeventSource::kernel;
  // udevd never removes its control socket, so its presence proves nothing:
  // only a socket that accepts a connection means udevd is running.
  return choose_source(mode, mode == SourceMode::automatic && udevd_listens(udevd_control));
}

BlockDevices::BlockDevices(UeventSource source, int receive_buffer_bytes, Backend backend) : backend_(backend) {
  if (backend == Backend::libudev) {
    impl_ = detail::open_libudev(source, receive_buffer_bytes);
  } else {
    if (source == UeventSource::udev)
      throw UdevError("udev monitor for source udev: the sysfs backend reads only the kernel's uevents");
    impl_ = detail::open_kernel_netlink(receive_buffer_bytes);
  }
}

BlockDevices::~BlockDevices() = default;
BlockDevices::BlockDevices(BlockDevices&&) noexcept = default;
BlockDevices& BlockDevices::operator=(BlockDevices&&) noexcept = default;

int BlockDevices::fd() const {
  return impl_->fd();
}

std::vector<devices::KernelDevice> BlockDevices::enumerate() const {
  return detail::enumerate_sysfs();
}

Received BlockDevices::receive() {
  return impl_->receive();
}

std::vector<devices::KernelDevice> enumerate_block_devices() {
  return detail::enumerate_sysfs();
}

}  // namespace diskgate::udev
