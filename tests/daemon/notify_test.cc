// daemon::notify against real datagram sockets, as systemd's manager binds
// them: a path and an abstract name, with SO_PASSCRED to check the sender.
#include "daemon/notify.h"

#include "daemon/event_loop.h"
#include "daemon/watchdog.h"
#include "gate/fakes.h"

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using diskgate::daemon::notify;
using diskgate::daemon::notify_to;
using diskgate::daemon::watchdog_interval;
using std::chrono::microseconds;

namespace {

// A bound SOCK_DGRAM socket, as systemd's notify socket: `name` starts
// with '/' (a path) or '@' (abstract).
struct Receiver {
  explicit Receiver(std::string name) : name(std::move(name)) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    int on = 1;
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, this->name.data(), this->name.size());
    socklen_t length = offsetof(sockaddr_un, sun_path) + this->name.size();
    if (this->name.front() == '@') address.sun_path[0] = '\0';
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0);
  }
  ~Receiver() {
    ::close(fd);
    if (name.front() == '/') ::unlink(name.c_str());
  }
  // The next datagram and its sender's pid; "" when none comes within 2 s.
  std::string receive(pid_t* sender = nullptr) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return "";
    char buffer[4096];
    iovec iov{buffer, sizeof buffer};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd, &message, MSG_DONTWAIT);
    REQUIRE(n >= 0);
    REQUIRE((message.msg_flags & MSG_TRUNC) == 0);
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && sender) {
        ucred credentials;
        std::memcpy(&credentials, CMSG_DATA(c), sizeof credentials);
        *sender = credentials.pid;
      }
    return std::string(buffer, n);
  }
  bool empty() {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 100) == 0;
  }
  std::string name;
  int fd = -1;
};

std::string unique(const char* prefix) {
  std::random_device random;
  return prefix + std::to_string(::getpid()) + "-" + std::to_string(random());
}

struct Environment {
  explicit Environment(const std::string& value) { ::setenv("NOTIFY_SOCKET", value.c_str(), 1); }
  ~Environment() { ::unsetenv("NOTIFY_SOCKET"); }
};

}  // namespace

TEST_CASE("notify: a path socket gets the message, with our pid") {
  char dir[] = "/tmp/notify-test.XXXXXX";
  REQUIRE(::mkdtemp(dir));
  {
    Receiver receiver(std::string(dir) + "/notify");
    Environment env(receiver.name);
    CHECK(notify("READY=1\nSTATUS=waiting: UUID=x on /perm/restic") == 1);
    pid_t sender = 0;
    CHECK(receiver.receive(&sender) == "READY=1\nSTATUS=waiting: UUID=x on /perm/restic");
    CHECK(sender == ::getpid());
    CHECK(notify("STOPPING=1") == 1);
    CHECK(receiver.receive() == "STOPPING=1");
    CHECK(receiver.empty());
  }
  ::rmdir(dir);
}

TEST_CASE("notify: an abstract socket ('@' name) gets the message") {
  Receiver receiver(unique("@diskgate-notify-test-"));
  Environment env(receiver.name);
  CHECK(notify("WATCHDOG=1") == 1);
  pid_t sender = 0;
  CHECK(receiver.receive(&sender) == "WATCHDOG=1");
  CHECK(sender == ::getpid());
  // The name is exactly the one given: no trailing NUL on the wire.
  CHECK(notify_to(receiver.name + "x", "READY=1") == -ECONNREFUSED);
  CHECK(receiver.empty());
}

TEST_CASE("notify: unset or empty NOTIFY_SOCKET is not an error and sends nothing") {
  ::unsetenv("NOTIFY_SOCKET");
  CHECK(notify("READY=1") == 0);
  Environment env("");
  CHECK(notify("READY=1") == 0);
}

TEST_CASE("notify: a missing socket, a relative or foreign address, an overlong name fail with -errno") {
  CHECK(notify_to("/nonexistent-dir-for-notify-test/notify", "READY=1") == -ENOENT);
  CHECK(notify_to("relative/notify", "READY=1") == -EINVAL);
  CHECK(notify_to("vsock:2:1234", "READY=1") == -EINVAL);
  CHECK(notify_to("/" + std::string(200, 'x'), "READY=1") == -EINVAL);
}

TEST_CASE("notify: no descriptor is left open") {
  Receiver receiver(unique("@diskgate-notify-fd-test-"));
  int before = ::dup(0);
  ::close(before);
  CHECK(notify_to(receiver.name, "READY=1") == 1);
  int after = ::dup(0);
  ::close(after);
  CHECK(after == before);  // the lowest free descriptor is the same: ours was closed
  CHECK(receiver.receive() == "READY=1");
}

TEST_CASE("watchdog: WATCHDOG_USEC and WATCHDOG_PID read as sd_watchdog_enabled reads them") {
  CHECK(watchdog_interval("120000000", std::nullopt, 42) == microseconds(120000000));
  CHECK(watchdog_interval("120000000", "42", 42) == microseconds(120000000));
  CHECK(watchdog_interval(std::nullopt, "42", 42) == std::nullopt);      // not asked for
  CHECK(watchdog_interval("120000000", "43", 42) == std::nullopt);       // for another process
  CHECK(watchdog_interval("120000000", "42x", 42) == std::nullopt);
  CHECK(watchdog_interval("120000000", "", 42) == std::nullopt);
  for (const char* bad : {"", "0", "1", "-5", "+5", " 5", "5 ", "12s", "99999999999999999999999"})
    CHECK(watchdog_interval(bad, std::nullopt, 42) == std::nullopt);
}

TEST_CASE("watchdog: WATCHDOG=1 at once, then every half interval, on the loop's clock") {
  Receiver receiver(unique("@diskgate-watchdog-clock-"));
  Environment env(receiver.name);
  diskgate::gate::fakes::ManualLoop loop;
  diskgate::daemon::keep_watchdog_fed(loop, std::chrono::seconds(120));
  auto pings = [&] {
    int n = 0;
    while (!receiver.empty()) n += receiver.receive() == "WATCHDOG=1";
    return n;
  };
  CHECK(pings() == 1);
  loop.advance(std::chrono::seconds(59));
  CHECK(pings() == 0);  // not before half the interval
  loop.advance(std::chrono::seconds(1));
  CHECK(pings() == 1);
  loop.advance(std::chrono::minutes(10));
  CHECK(pings() == 10);  // one every 60 s, none skipped or doubled
  CHECK(loop.pending_timers() == 1);
}

// The real loop and clock (the seam crossed): generous bounds.
TEST_CASE("watchdog: the event loop sends WATCHDOG=1 every half interval, only while it runs") {
  Receiver receiver(unique("@diskgate-watchdog-test-"));
  Environment env(receiver.name);
  diskgate::daemon::EventLoop loop;
  diskgate::daemon::keep_watchdog_fed(loop, std::chrono::milliseconds(100));
  CHECK(receiver.receive() == "WATCHDOG=1");  // at once, not only after the first period
  // The real clock: 5 periods of 50 ms, of which at least 3 must show (generous).
  loop.add_timer(std::chrono::milliseconds(260), [&] { loop.stop(0); });
  loop.run();
  int pings = 0;
  while (!receiver.empty()) pings += receiver.receive() == "WATCHDOG=1";
  CHECK(pings >= 3);
  CHECK(pings <= 6);
  // A loop that does not run (stuck) sends nothing.
  CHECK(receiver.empty());
}
