// Probes devices off the event loop. Worker threads are reused, and a new
// one is started whenever every worker is busy, so a disk whose reads hang
// holds only its own worker, never the bus or other devices' probes. Idle
// workers beyond the first end after a while. Results come back through an
// eventfd the loop polls.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "devices/device.h"

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

  explicit ProbeWorker(Identify identify);
  ~ProbeWorker();
  ProbeWorker(const ProbeWorker&) = delete;
  ProbeWorker& operator=(const ProbeWorker&) = delete;

  int fd() const;
  void submit(const devices::KernelDevice& device, std::uint64_t token);
  // Results finished since the last call; clears the eventfd.
  std::vector<Result> collect();
  // Jobs started whose result has not been collected yet.
  std::size_t in_flight() const;

  struct Shared;

 private:
  Identify identify_;
  std::shared_ptr<Shared> shared_;  // outlives a hung thread after we are gone
};

// The real identification: probe_path on the device node, then the tags
// plain blkid would print. Errors become an unreadable identity with reason.
devices::Identity identify_device(const devices::KernelDevice& device);

}  // namespace diskgate::daemon
