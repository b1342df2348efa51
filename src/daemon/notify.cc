#include "daemon/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace diskgate::daemon {

int notify_to(std::string_view socket, std::string_view message) noexcept {
  if (socket.empty()) return 0;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // The name without a trailing NUL for an abstract socket (as systemd binds
  // it), with one for a path.
  if (socket.front() != '/' && socket.front() != '@') return -EINVAL;
  if (socket.size() >= sizeof address.sun_path) return -EINVAL;
  std::memcpy(address.sun_path, socket.data(), socket.size());
  socklen_t length = offsetof(sockaddr_un, sun_path) + socket.size();
  if (socket.front() == '@')
    address.sun_path[0] = '\0';
  else
    length += 1;

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // The receiver (systemd) asks for our credentials with SO_PASSCRED; the
  // kernel attaches them, so none are sent explicitly.
  ssize_t sent;
  do {
    sent = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                    length);
  } while (sent < 0 && errno == EINTR);
  int error = sent < 0 ? errno : 0;
  ::close(fd);
  if (error) return -error;
  return static_cast<size_t>(sent) == message.size() ? 1 : -EMSGSIZE;
}

int notify(std::string_view message) noexcept {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return notify_to(socket ? socket : "", message);
}

}  // namespace diskgate::daemon
