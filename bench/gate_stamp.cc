// gate-stamp: prints CLOCK_MONOTONIC microseconds taken just before an
// action, so that bench/gate can compare it with diskgated's MountedAtUsec
// (the same clock; `date` has only the wall clock).
//
//   gate-stamp write FILE TEXT    write TEXT to FILE (a /sys/block/*/uevent)
//   gate-stamp exec COMMAND ARG...  run COMMAND (losetup) in this process
//   gate-stamp mount SOURCE TARGET FSTYPE DATA
//                                 call mount(2) and print how long it took
//
// The stamp (or the duration) is the first line of stdout; with exec, the
// command's own output follows.
#include <fcntl.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

unsigned long long monotonic_usec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL + static_cast<unsigned long long>(now.tv_nsec) / 1000;
}

int usage() {
  std::fprintf(stderr,
               "usage: gate-stamp write FILE TEXT | gate-stamp exec COMMAND [ARG...] | "
               "gate-stamp mount SOURCE TARGET FSTYPE DATA\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  std::string mode = argv[1];
  if (mode == "write" && argc == 4) {
    // Opened before the stamp: only the write itself is the event.
    int fd = ::open(argv[2], O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      std::fprintf(stderr, "gate-stamp: open %s: %s\n", argv[2], std::strerror(errno));
      return 1;
    }
    std::size_t length = std::strlen(argv[3]);
    unsigned long long stamp = monotonic_usec();
    ssize_t written = ::write(fd, argv[3], length);
    int error = errno;
    ::close(fd);
    if (written != static_cast<ssize_t>(length)) {
      std::fprintf(stderr, "gate-stamp: write %s: %s\n", argv[2], std::strerror(error));
      return 1;
    }
    std::printf("%llu\n", stamp);
    return 0;
  }
  if (mode == "mount" && argc == 6) {
    // What the gate's MountedAtUsec..StartedAtUsec interval contains first.
    unsigned long long start = monotonic_usec();
    int r = ::mount(argv[2], argv[3], argv[4], 0, argv[5]);
    unsigned long long end = monotonic_usec();
    if (r != 0) {
      std::fprintf(stderr, "gate-stamp: mount %s on %s: %s\n", argv[2], argv[3], std::strerror(errno));
      return 1;
    }
    std::printf("%llu\n", end - start);
    return 0;
  }
  if (mode == "exec") {
    std::printf("%llu\n", monotonic_usec());
    std::fflush(stdout);
    ::execvp(argv[2], argv + 2);
    std::fprintf(stderr, "gate-stamp: exec %s: %s\n", argv[2], std::strerror(errno));
    return 127;
  }
  return usage();
}
