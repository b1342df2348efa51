// diskgated: keeps a live map of block devices and serves it on D-Bus.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-daemon.h>

#include "daemon/daemon.h"
#include "common/log.h"
#include "dbus/object_path.h"
#include "udev/block_devices.h"
#include "udev/node_watcher.h"

namespace {

using namespace diskgate;
using diskgate::Level;
using diskgate::log;

constexpr int usage_error = 2;

struct Options {
  std::string uevents = "auto";
  std::string bus = "system";
  bool no_bus = false;
  std::string log_level = "info";
};

std::unique_ptr<sdbus::IConnection> connect_bus(const std::string& bus) {
  if (bus == "system") return sdbus::createSystemBusConnection(dbus::bus_name);
  if (bus == "session") return sdbus::createSessionBusConnection(dbus::bus_name);
  auto connection = sdbus::createSessionBusConnectionWithAddress(bus);
  connection->requestName(dbus::bus_name);
  return connection;
}

// SIGTERM/SIGINT end the loop cleanly, SIGHUP rescans: all through a signalfd
// so that handlers run on the loop, not in signal context.
int open_signalfd() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, signal);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
  return fd;
}

int run(const Options& options) {
  auto mode = udev::parse_source_mode(options.uevents);
  udev::UeventSource source = udev::choose_source(*mode, "/run/udev/control");
  log(Level::info, "starting: uevents from {}, {}", udev::to_string(source),
      options.no_bus ? "no D-Bus" : "D-Bus " + options.bus);

  daemon::EventLoop loop;
  int signal_fd = open_signalfd();
  udev::BlockDevices block_devices(source, 4 * 1024 * 1024);
  // Without udevd nobody tells us of mkfs on a device: watch the nodes.
  std::unique_ptr<udev::NodeWatcher> watcher;
  if (source == udev::UeventSource::kernel) watcher = std::make_unique<udev::NodeWatcher>();
  daemon::ProbeWorker worker(daemon::identify_device);
  // Declared before the monitor, so that the bus objects go first.
  std::unique_ptr<sdbus::IConnection> connection;
  daemon::DeviceMonitor monitor(loop, block_devices, watcher.get(), worker);

  if (!options.no_bus) {
    connection = connect_bus(options.bus);
    monitor.attach_bus(*connection);
    loop.watch_dynamic(
        [&connection] {
          auto poll_data = connection->getEventLoopPollData();
          daemon::EventLoop::Dynamic dynamic{poll_data.fd, poll_data.events, std::nullopt};
          if (poll_data.timeout_usec != UINT64_MAX) {
            timespec now{};
            clock_gettime(CLOCK_MONOTONIC, &now);
            auto now_usec = static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
            auto left = poll_data.timeout_usec > now_usec ? poll_data.timeout_usec - now_usec : 0;
            dynamic.deadline = daemon::EventLoop::Clock::now() + std::chrono::microseconds(left);
          }
          return dynamic;
        },
        [&connection] {
          while (connection->processPendingRequest()) {
          }
        });
  }

  loop.watch(signal_fd, POLLIN, [&](short) {
    signalfd_siginfo info{};
    while (::read(signal_fd, &info, sizeof info) == sizeof info) {
      if (info.ssi_signo == SIGHUP) {
        monitor.rescan();
      } else {
        log(Level::info, "signal {} received: exiting", info.ssi_signo);
        loop.stop(0);
      }
    }
  });

  monitor.start();
  sd_notifyf(0, "READY=1\nSTATUS=watching %zu block devices", monitor.map().all().size());
  log(Level::info, "ready: {} block devices", monitor.map().all().size());
  int status = loop.run();
  sd_notify(0, "STOPPING=1");
  ::close(signal_fd);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"diskgated: live block device map and gate for rest-server"};
  Options options;
  app.add_option("--uevents", options.uevents, "Where hotplug events come from: auto, udev or kernel")
      ->check(CLI::IsMember({"auto", "udev", "kernel"}));
  app.add_option("--bus", options.bus, "D-Bus to serve on: system, session or an address (unix:path=...)");
  app.add_flag("--no-bus", options.no_bus, "Serve no D-Bus (appliances without one)");
  app.add_option("--log-level", options.log_level, "error, warning, notice, info or debug")
      ->check(CLI::IsMember({"error", "warning", "notice", "info", "debug"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "diskgated: " << e.what() << "\n";
    return usage_error;
  }
  Level level = Level::info;
  parse_level(options.log_level, level);
  set_log_level(level);
  try {
    return run(options);
  } catch (const sdbus::Error& e) {
    log(Level::error, "D-Bus ({}): {}", options.bus, e.getMessage());
  } catch (const std::exception& e) {
    log(Level::error, "{}", e.what());
  }
  return 1;
}
