// Enumerates the block devices off the event loop: one thread per
// enumeration, at most one at a time (ScanQueue decides when), posting the
// snapshot back through an eventfd the loop polls, as ProbeWorker does.
// Walking sysfs for a thousand devices takes ~100 ms: on the loop, that
// would stall every D-Bus caller and uevent meanwhile.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "devices/device.h"

namespace diskgate::daemon {

class Enumerator {
 public:
  using Enumerate = std::function<std::vector<devices::KernelDevice>()>;
  // What start()'s enumeration gave: the devices, or why it failed.
  using Outcome = std::variant<std::vector<devices::KernelDevice>, std::string>;

  // `enumerate` runs on the enumeration thread; it must not touch state the
  // loop owns (the daemon passes udev::enumerate_block_devices, which makes
  // its own libudev context, or walks sysfs in a build without libudev).
  explicit Enumerator(Enumerate enumerate);
  ~Enumerator();  // waits for a running enumeration (sysfs does not hang)
  Enumerator(const Enumerator&) = delete;
  Enumerator& operator=(const Enumerator&) = delete;

  int fd() const { return event_fd_; }
  // Starts an enumeration; false when one runs already or no thread could
  // be had (the caller logs and retries on the next request).
  bool start();
  bool running() const { return thread_.joinable(); }
  // Once fd() is readable: the finished enumeration's outcome.
  Outcome collect();

 private:
  Enumerate enumerate_;
  int event_fd_ = -1;
  std::thread thread_;
  Outcome outcome_;  // written by the thread, read after join()
};

}  // namespace diskgate::daemon
