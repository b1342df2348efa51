// systemd's readiness protocol without libsystemd: one datagram to the
// socket named by $NOTIFY_SOCKET, as sd_notify(3) sends it. Every build has
// it, the static one (no libsystemd) included.
#pragma once

#include <string>
#include <string_view>

namespace diskgate::daemon {

// Sends `message` ("READY=1", "STATUS=...", "STOPPING=1", "WATCHDOG=1",
// several separated by newlines) to $NOTIFY_SOCKET: an absolute path or an
// abstract name written with a leading '@'. Returns 0 when NOTIFY_SOCKET is
// unset or empty (not started by systemd: nothing to do), 1 when sent, and
// -errno on failure (-EINVAL for an address of another kind, e.g. vsock:,
// or one too long for sockaddr_un). Never throws; SIGPIPE is not raised.
int notify(std::string_view message) noexcept;

// The same with the socket named explicitly (the value NOTIFY_SOCKET would
// hold); `socket` empty returns 0.
int notify_to(std::string_view socket, std::string_view message) noexcept;

}  // namespace diskgate::daemon
