// Probes devices off the event loop, on at most `max_workers` threads, so
// that a burst of hotplug events (or the start, with every device at once)
// does not start a thread per device. A job that has waited `stuck_after`
// with every worker busy gets one more thread: a disk whose reads hang holds
// only its own worker, never the bus or other devices' probes. Those rescue
// threads are capped too: never more than max_workers + rescue_workers
// threads in all (hard_cap()), whatever callers submit; beyond that, jobs
// wait for a worker to come back. Idle workers beyond the first end after a
// while. Results come back through an eventfd the loop polls.
//
// Coalescing: per device name at most one job queued and one running. A
// submit for a device whose job is still queued replaces it (the newest
// facts and token win); one for a device being probed runs once more after
// that probe. The superseded results are the map's stale tokens anyway, so
// N submits cost at most two probes, and a hung disk's submits never pile
// up behind it.
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
  // The seam: how a device's identity is found, after flushing `written`
  // (empty for none; see submit). The daemon passes the real prober
  // (identify_device); tests pass their own.
  using Identify = std::function<devices::Identity(const devices::KernelDevice& device, const std::string& written)>;

  struct Result {
    std::string name;
    std::uint64_t token;
    devices::Identity identity;
  };

  static constexpr std::size_t default_max_workers = 4;
  // Threads beyond max_workers for jobs stuck behind hung disks, at most.
  static constexpr std::size_t rescue_workers = 4;
  static constexpr std::chrono::milliseconds default_stuck_after{1000};

  ProbeWorker(Identify identify, gate::Loop& loop, std::size_t max_workers = default_max_workers,
              gate::Loop::Clock::duration stuck_after = default_stuck_after);
  ~ProbeWorker();
  ProbeWorker(const ProbeWorker&) = delete;
  ProbeWorker& operator=(const ProbeWorker&) = delete;

  int fd() const;
  // Coalesced per device.name (see above). `written`: another node, just
  // written to, whose data `device` shows through its own page cache (a
  // disk and its partitions), which the kernel does not keep coherent with
  // the writer's: the probe makes the writes visible first (see
  // identify_device). A queued job keeps the last non-empty one.
  void submit(const devices::KernelDevice& device, std::uint64_t token, const std::string& written = {});
  // Results finished since the last call; clears the eventfd.
  std::vector<Result> collect();
  // Jobs started whose result has not been collected yet.
  std::size_t in_flight() const;
  // Threads running (busy or idle).
  std::size_t workers() const;
  // workers() never exceeds this: max_workers + rescue_workers.
  std::size_t hard_cap() const { return max_workers_ + rescue_workers; }

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

// Lowers the calling thread's CPU priority (nice +10): background work
// (probes, enumerations) gives way to the event loop, which answers callers
// and applies removals. Called first thing by every worker thread.
void lower_thread_priority();

// The real identification: probe_path on the device node, then the tags
// plain blkid would print. Errors become an unreadable identity with reason.
// `written`, if any, is another node just written to: its writes are made
// visible through this one first (flushed, and this node's older cached
// pages dropped).
devices::Identity identify_device(const devices::KernelDevice& device, const std::string& written = {});

}  // namespace diskgate::daemon
