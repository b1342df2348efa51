// Probes devices off the event loop, on at most `max_workers` threads, so
// that a burst of hotplug events (or the start, with every device at once)
// does not start a thread per device. A job that has waited `stuck_after`
// with every worker busy gets one more thread: a disk whose reads hang holds
// only its own worker, never the bus or other devices' probes. Idle workers
// beyond the first end after a while. Results come back through an eventfd
// the loop polls.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/device.h"
#include "gate/loop.h"

namespace diskgate::daemon {

class ProbeWorker {
 public:
  // The seam: how a device's identity is found. The daemon passes the real
  // prober (identify_device); tests pass their own.
  using Identify = std::function<devices::Identity(const devices::KernelDevice&)>;

  struct Result {
    std::string name;
    std::uint64_t token;
    devices::Identity identity;
  };

  static constexpr std::size_t default_max_workers = 4;
  static constexpr std::chrono::milliseconds default_stuck_after{1000};

  ProbeWorker(Identify identify, gate::Loop& loop, std::size_t max_workers = default_max_workers,
              gate::Loop::Clock::duration stuck_after = default_stuck_after);
  ~ProbeWorker();
  ProbeWorker(const ProbeWorker&) = delete;
  ProbeWorker& operator=(const ProbeWorker&) = delete;

  int fd() const;
  void submit(const devices::KernelDevice& device, std::uint64_t token);
  // Results finished since the last call; clears the eventfd.
  std::vector<Result> collect();
  // Jobs started whose result has not been collected yet.
  std::size_t in_flight() const;
  // Threads running (busy or idle).
  std::size_t workers() const;

  struct Shared;

 private:
  // Starts a worker; false when the system has no thread to give.
  bool start_worker();
  // The loop's timer: starts a worker for a job that waited too long.
  void rescue_waiting_job();
  void arm_rescue(gate::Loop::Clock::time_point queued);

  Identify identify_;
  gate::Loop& loop_;
  std::size_t max_workers_;
  gate::Loop::Clock::duration stuck_after_;
  std::optional<gate::Loop::TimerId> rescue_timer_;
  std::shared_ptr<Shared> shared_;  // outlives a hung thread after we are gone
};

// The real identification: probe_path on the device node, then the tags
// plain blkid would print. Errors become an unreadable identity with reason.
devices::Identity identify_device(const devices::KernelDevice& device);

}  // namespace diskgate::daemon
