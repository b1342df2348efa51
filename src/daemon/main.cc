// diskgated: keeps a live map of block devices, serves it on D-Bus, and with
// --source gates a program (rest-server) on the filesystem it names.
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "common/log.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/notify.h"
#include "daemon/watchdog.h"
#if DISKGATE_DBUS

#include "daemon/bus_link.h"
#include "dbus/gate_object.h"
#include "dbus/object_path.h"
#endif
#include "os/users.h"
#include "udev/block_devices.h"
#include "udev/node_watcher.h"

namespace {

using namespace diskgate;

constexpr int usage_error = 2;

// SIGTERM/SIGINT end the loop cleanly, SIGHUP rescans: all through a signalfd
// so that handlers run on the loop, not in signal context. The program the
// gate starts gets a clean signal mask (os::SystemPlatform::spawn).
int open_signalfd() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, signal);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
  return fd;
}

std::string status_line(const gate::Status& status, const gate::Config& config) {
  std::string line = fmt::format("{}: {} on {}", gate::to_string(status.state), config.source_text, config.target);
  if (status.program_pid) line += fmt::format(" ({} pid {})", config.argv.front(), status.program_pid);
  if (!status.last_error.empty()) line += ": " + status.last_error;
  return line;
}

int run(daemon::DaemonConfig& config) {
  if (config.gate) {
    std::string& program = config.gate->argv.front();
    const char* path = std::getenv("PATH");
    auto found = daemon::find_program(program, path ? path : "",
                                      [](const std::string& file) { return ::access(file.c_str(), X_OK) == 0; });
    if (!found) {
      log(Level::error, "{}: not found in PATH, /usr/local/bin or /user; name it with --exec", program);
      return 1;
    }
    program = *found;
    if (!config.user.empty()) {
      // Our own lookup in the files, not NSS: the static build has none.
      os::SystemPlatform files;
      auto resolved = os::resolve_user(config.user, files.read_text("/etc/passwd").value_or(""),
                                       files.read_text("/etc/group").value_or(""));
      if (auto* error = std::get_if<std::string>(&resolved)) {
        log(Level::error, "{}", *error);
        return usage_error;
      }
      config.gate->credentials = std::get<os::Credentials>(resolved);
    }
  }
  auto mode = udev::parse_source_mode(config.uevents);
  // (A std::string: for a bare "...", the bool overload would be the better match.)
  udev::UeventSource source = udev::choose_source(*mode, std::string("/run/udev/control"));
  log(Level::info, "starting: uevents from {} ({}), {}", udev::to_string(source), udev::to_string(udev::default_backend()),
      !DISKGATE_DBUS ? "no D-Bus (built without D-Bus)" : config.no_bus ? "no D-Bus" : "D-Bus " + config.bus);

  daemon::EventLoop loop;
  int signal_fd = open_signalfd();
  udev::BlockDevices block_devices(source, 4 * 1024 * 1024);
  // In udev mode the kernel's own uevents too: a removal reaches the map
  // even when udevd is stopped or stuck.
  std::unique_ptr<udev::BlockDevices> kernel_devices;
  if (source == udev::UeventSource::udev)
    kernel_devices = std::make_unique<udev::BlockDevices>(udev::UeventSource::kernel, 4 * 1024 * 1024);
  // Without udevd nobody tells us of mkfs on a device: watch the nodes (in
  // udev mode only while udevd does not answer).
  auto watcher = std::make_unique<udev::NodeWatcher>();
  daemon::ProbeWorker worker(daemon::identify_device, loop);
  // Declared before what publishes on it, so that the bus objects go first.
#if DISKGATE_DBUS
  std::unique_ptr<daemon::BusLink> bus;
#endif
  daemon::DeviceMonitor monitor(loop, block_devices, kernel_devices.get(), watcher.get(), worker);
  os::SystemPlatform platform;
  std::unique_ptr<gate::Gate> gate;
#if DISKGATE_DBUS
  std::unique_ptr<dbus::GateObject> gate_object;
#endif
  if (config.gate) gate = std::make_unique<gate::Gate>(*config.gate, platform, loop);

  // A bus missing at start: fatal when named with --bus, else only the API
  // is missing. A bus lost later is reconnected to (BusLink).
#if DISKGATE_DBUS
  if (!config.no_bus) {
    try {
      bus = std::make_unique<daemon::BusLink>(loop, config.bus);
    } catch (const dbus::BusError& e) {
      if (config.bus_given) throw;
      log(Level::warning, "no system bus ({}): running without D-Bus", e.what());
    }
  }
  if (bus) {
    // Every object on the bus is made again on each connection and dropped
    // when it is lost (before the connection is closed).
    bus->serve(
        [&](dbus::Bus& connection) {
          monitor.attach_bus(connection, [&](dbus::MessageWriter& writer) {
            if (gate_object) gate_object->append_managed(writer);
          });
          if (gate) gate_object = std::make_unique<dbus::GateObject>(connection, *gate);
        },
        [&]() noexcept {
          gate_object.reset();
          monitor.detach_bus();
        });
  }
#endif
  if (gate) {
    gate->on_status([&](const gate::Status& status) {
#if DISKGATE_DBUS
      if (gate_object) gate_object->changed(status);
#endif
      daemon::notify("STATUS=" + status_line(status, gate->config()));
    });
    gate->on_finished([&loop](int code) { loop.stop(code); });
    monitor.on_changes([&](const std::vector<devices::Change>&) { gate->update(monitor.map()); });
  }

  bool stopping = false;
  loop.watch(signal_fd, POLLIN, [&](short) {
    signalfd_siginfo info{};
    while (::read(signal_fd, &info, sizeof info) == sizeof info) {
      if (info.ssi_signo == SIGHUP) {
        monitor.rescan();  // never forwarded: rest-server --no-auth dies of it
      } else if (!stopping) {
        stopping = true;
        log(Level::info, "signal {} received: exiting", info.ssi_signo);
        daemon::notify("STOPPING=1");
        if (gate)
          gate->shutdown([&loop] { loop.stop(0); });
        else
          loop.stop(0);
      }
    }
  });

  // systemd's WatchdogSec=: asked for once; the program we start must not
  // see it (it is not the process systemd watches).
  auto env = [](const char* name) -> std::optional<std::string_view> {
    const char* value = std::getenv(name);
    return value ? std::optional<std::string_view>(value) : std::nullopt;
  };
  auto watchdog_usec = env("WATCHDOG_USEC"), watchdog_pid = env("WATCHDOG_PID");
  auto watchdog = daemon::watchdog_interval(watchdog_usec, watchdog_pid, ::getpid());
  if (watchdog_usec && !watchdog)
    log(Level::warning, "WATCHDOG_USEC={} WATCHDOG_PID={}: not a watchdog request for this process; ignored",
        *watchdog_usec, watchdog_pid.value_or("(unset)"));
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");

  monitor.start();
  if (gate) gate->update(monitor.map());
  daemon::notify("READY=1\nSTATUS=" + (gate ? status_line(gate->status(), gate->config())
                                          : fmt::format("watching {} block devices", monitor.map().all().size())));
  log(Level::info, "ready: {} block devices", monitor.map().all().size());
  if (watchdog) {
    log(Level::info, "watchdog: WATCHDOG=1 every {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2).count());
    daemon::keep_watchdog_fed(loop, *watchdog);
  }
  int status = loop.run();
  ::close(signal_fd);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  // Probe threads would each get a malloc arena of their own; one is plenty.
  mallopt(M_ARENA_MAX, 1);
  auto parsed = daemon::parse_config(std::vector<std::string>(argv + 1, argv + argc),
                                     [](const std::string& name) -> std::optional<std::string> {
                                       const char* value = std::getenv(name.c_str());
                                       return value ? std::optional<std::string>(value) : std::nullopt;
                                     });
  if (auto* error = std::get_if<daemon::ConfigError>(&parsed)) {
    std::cerr << "diskgated: " << error->message << "\n";
    return usage_error;
  }
  auto& config = std::get<daemon::DaemonConfig>(parsed);
  if (config.help) {
    std::cout << config.help_text;
    return 0;
  }
  if (!DISKGATE_DBUS && config.bus_given) {
    std::cerr << "diskgated: --bus " << config.bus << ": built without D-Bus (-Ddbus=disabled); leave --bus out\n";
    return usage_error;
  }
  if (!udev::have_libudev() && config.uevents == "udev") {
    std::cerr << "diskgated: --uevents udev: built without libudev (-Dudev=disabled); use --uevents kernel or auto\n";
    return usage_error;
  }
  Level level = Level::info;
  parse_level(config.log_level, level);
  set_log_level(level);
  try {
    return run(config);
#if DISKGATE_DBUS
  } catch (const dbus::BusError& e) {
    log(Level::error, "D-Bus ({}): {}", config.bus, e.what());
#endif
  } catch (const std::exception& e) {
    log(Level::error, "{}", e.what());
  }
  return 1;
}
