// Helpers for tests that cross into the kernel: scratch images, loop devices
// and a systemd-udevd, each undone by its destructor so that a failing
// assertion still detaches and stops what the test set up.
//
// support.cc also holds main(): a binary that cannot run (not root, no
// /dev/loop-control, tools missing) says why and is skipped as a whole
// (skip_binary: TAP "1..0 # SKIP" under meson, else exit 77). A test case
// that cannot run calls SKIP_TEST(reason) (skip.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <catch2/catch.hpp>

#include "skip.h"

namespace diskgate::testing {


// Why loop-device tests cannot run here; nullopt when they can.
std::optional<std::string> loop_unavailable();

// Runs `command` under /bin/sh and returns its stdout; throws with the
// command and its exit status when it fails.
std::string run(const std::string& command);

// Writes `text` to an existing file (sysfs attributes); throws on failure.
void write_file(const std::string& path, const std::string& text);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A sparse file of `bytes` bytes.
void make_image(const std::string& path, std::uint64_t bytes);
// An 8 MiB image with a GPT made by sfdisk: partition 1 at sector 2048 of
// 1 MiB, partition 2 at sector 4096 of 2 MiB.
void make_gpt_image(const std::string& path);
inline constexpr std::uint64_t gpt_image_bytes = 8 << 20;
inline constexpr std::uint64_t gpt_part1_bytes = 1 << 20;
inline constexpr std::uint64_t gpt_part2_bytes = 2 << 20;

// A loop device attached with `losetup -f --show [-P]`, detached when it
// goes out of scope unless detach() already did. With partscan, partitions
// the kernel's own scan missed are added with `partx --add`; detaching
// drops them either way.
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& image, bool partscan = false);
  ~LoopDevice();
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;

  const std::string& node() const { return node_; }  // "/dev/loop3"
  const std::string& name() const { return name_; }  // "loop3"
  void detach();
  // The kernel's scan found no partitions, so partx --add made them.
  bool partitions_by_partx() const { return partitions_by_partx_; }

 private:
  std::string node_, name_;
  bool attached_ = false;
  bool partitions_by_partx_ = false;
};

// major:minor of a device node, from stat(2).
std::pair<unsigned, unsigned> device_number(const std::string& node);

// A systemd-udevd for the duration of a test: reuses one that already runs
// (its control socket exists), otherwise starts /lib/systemd/systemd-udevd
// in the foreground as our child, so that we know its pid, and stops
// exactly that pid on destruction. udevd leaves /run/udev behind, its control
// socket included; when /run/udev did not exist before we started it, it is
// removed again. skip_reason() says why no udevd is available.
class Udevd {
 public:
  explicit Udevd(const std::string& log_path);
  ~Udevd();
  Udevd(const Udevd&) = delete;
  Udevd& operator=(const Udevd&) = delete;

  const std::optional<std::string>& skip_reason() const { return skip_reason_; }
  bool started_by_us() const { return pid_ > 0; }

 private:
  void stop();
  pid_t pid_ = -1;
  bool created_run_udev_ = false;
  bool started_ = false;  // we started a udevd (its control socket is ours)
  std::optional<std::string> skip_reason_;
};

// poll(2) for POLLIN on `fd` until `deadline`; false on timeout.
bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline);

}  // namespace diskgate::testing
