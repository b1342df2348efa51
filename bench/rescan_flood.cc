// bench-rescan-flood: the clients of bench/rescan-flood.
//
//   bench-rescan-flood resolve --bus ADDR --uuid U [--interval-ms 10] [--seconds 10]
//   bench-rescan-flood rescan  --bus ADDR [--seconds 10]
//   bench-rescan-flood remove-loops N...
//
// resolve: one Manager.Resolve("UUID=U") every interval, for the duration;
// prints "RESULT calls=.. errors=.. p50_ms=.. p99_ms=.. max_ms=..".
// rescan: Manager.Rescan() back to back, for the duration; prints
// "RESULT rescans=..".
// remove-loops: LOOP_CTL_REMOVE of /dev/loopN for each N (nodes the bench
// created); one still busy after 10 s is left and named on stderr.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string command, bus, uuid;
  int interval_ms = 10;
  double seconds = 10;
  std::vector<int> loops;
};

std::unique_ptr<sdbus::IProxy> manager(sdbus::IConnection& connection) {
  return sdbus::createProxy(connection, "org.diskgate1", "/org/diskgate1");
}

int run_resolve(const Options& options) {
  auto connection = sdbus::createSessionBusConnectionWithAddress(options.bus);
  auto proxy = manager(*connection);
  std::vector<double> ms;
  int errors = 0;
  auto end = Clock::now() + std::chrono::duration<double>(options.seconds);
  auto next = Clock::now();
  while (Clock::now() < end) {
    auto start = Clock::now();
    try {
      std::string node;
      proxy->callMethod("Resolve").onInterface("org.diskgate1.Manager").withArguments("UUID=" + options.uuid)
          .storeResultsTo(node);
    } catch (const sdbus::Error&) {
      ++errors;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    next += std::chrono::milliseconds(options.interval_ms);
    std::this_thread::sleep_until(next);
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, std::size_t(q * ms.size()))]; };
  std::printf("RESULT calls=%zu errors=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", ms.size(), errors, at(0.50),
              at(0.99), ms.empty() ? 0.0 : ms.back());
  return errors == 0 ? 0 : 1;
}

int run_rescan(const Options& options) {
  auto connection = sdbus::createSessionBusConnectionWithAddress(options.bus);
  auto proxy = manager(*connection);
  long rescans = 0;
  auto end = Clock::now() + std::chrono::duration<double>(options.seconds);
  while (Clock::now() < end) {
    proxy->callMethod("Rescan").onInterface("org.diskgate1.Manager");
    ++rescans;
  }
  std::printf("RESULT rescans=%ld\n", rescans);
  return 0;
}

int run_remove_loops(const Options& options) {
  int control = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (control < 0) {
    std::perror("bench-rescan-flood: /dev/loop-control");
    return 1;
  }
  int failed = 0;
  for (int n : options.loops) {
    // Detaching completes asynchronously and another prober (udevd, a
    // diskgated) may hold the node open a moment: retry EBUSY for 10 s.
    int tries = 0;
    while (::ioctl(control, LOOP_CTL_REMOVE, n) < 0 && errno != ENODEV) {
      if (errno != EBUSY || ++tries == 100) {
        std::fprintf(stderr, "bench-rescan-flood: LOOP_CTL_REMOVE loop%d: %s\n", n, std::strerror(errno));
        ++failed;
        break;
      }
      ::usleep(100'000);
    }
  }
  ::close(control);
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (argc < 2) {
    std::cerr << "usage: bench-rescan-flood resolve|rescan|remove-loops ...\n";
    return 2;
  }
  options.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--bus") options.bus = value();
    else if (arg == "--uuid") options.uuid = value();
    else if (arg == "--interval-ms") options.interval_ms = std::stoi(value());
    else if (arg == "--seconds") options.seconds = std::stod(value());
    else if (options.command == "remove-loops") options.loops.push_back(std::stoi(arg));
    else {
      std::cerr << "bench-rescan-flood: unknown argument " << arg << "\n";
      return 2;
    }
  }
  try {
    if (options.command == "resolve") return run_resolve(options);
    if (options.command == "rescan") return run_rescan(options);
    if (options.command == "remove-loops") return run_remove_loops(options);
  } catch (const sdbus::Error& e) {
    std::cerr << "bench-rescan-flood: D-Bus: " << e.getName() << ": " << e.getMessage() << "\n";
    return 1;
  }
  std::cerr << "bench-rescan-flood: unknown command " << options.command << "\n";
  return 2;
}
