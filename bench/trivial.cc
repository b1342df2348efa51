// bench-trivial: the RSS floor diskgated is compared with. It links the
// same shared libraries as diskgated (libudev when built with it, fmt,
// libsystemd for sd-bus, and the checksum libraries of the probers: zlib,
// xxhash, libmd, libb2), calls each once so that its pages are mapped as in
// a real user, opens one bus connection, and does nothing else.
//
//   bench-trivial [BUS-ADDRESS] [--smaps]
// prints "VmRSS_kB=N"; with --smaps also the resident kB of each mapped file.
#include <blake2.h>
#if DISKGATE_HAVE_LIBUDEV
#include <libudev.h>
#endif
#include <sha2.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <xxhash.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include <fmt/format.h>

int main(int argc, char** argv) {
#if DISKGATE_HAVE_LIBUDEV
  udev* context = udev_new();
  udev_unref(context);
#endif
  (void)sd_booted();
  const std::uint8_t byte = 0;
  std::uint64_t sink = crc32(0L, &byte, 1) + XXH64(&byte, 1, 0);
  SHA2_CTX sha;
  std::uint8_t digest[32];
  SHA256Init(&sha);
  SHA256Update(&sha, &byte, 1);
  SHA256Final(digest, &sha);
  blake2b(digest, &byte, nullptr, sizeof digest, 1, 0);
  sink += digest[0];
  sd_bus* bus = nullptr;
  if (argc > 1 && (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, argv[1]) < 0 ||
                   sd_bus_set_bus_client(bus, 1) < 0 || sd_bus_start(bus) < 0)) {
    std::cerr << "bench-trivial: cannot connect to " << argv[1] << "\n";
    return 1;
  }
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) std::cout << fmt::format("VmRSS_kB={}\n", std::stol(line.substr(6)));
  if (argc > 2 && std::strcmp(argv[2], "--smaps") == 0) {
    std::ifstream smaps("/proc/self/smaps");
    std::map<std::string, long> resident;
    std::string name;
    for (std::string line; std::getline(smaps, line);) {
      if (line.find('-') < line.find(' ') && line.find(':') > line.find(' ')) {  // a mapping's header line
        auto slash = line.find_first_of("/[");
        name = slash == std::string::npos ? "[anon]" : line.substr(slash);
      } else if (line.rfind("Rss:", 0) == 0) {
        resident[name] += std::stol(line.substr(4));
      }
    }
    for (const auto& [file, kb] : resident) std::cout << fmt::format("{} {}\n", kb, file);
  }
  sd_bus_flush_close_unref(bus);
  return sink == 0xFFFFFFFFFFFFFFFF ? 1 : 0;  // keeps the calls
}
