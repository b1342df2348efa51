// When to enumerate the block devices again: pure bookkeeping, no threads,
// so the joining rule is tested on its own (tests/daemon/scan_queue_test.cc).
//
// At most one enumeration runs and at most one waits. A request while none
// runs starts one; a request while one runs is queued, since the running one
// may have read sysfs before whatever prompted the request; every request
// made while one runs joins that single queued one. So any number of callers
// (Rescan in a loop, SIGHUP, ENOBUFS) cost at most one enumeration more than
// the one running.
#pragma once

#include <cstddef>
#include <optional>

namespace diskgate::daemon {

class ScanQueue {
 public:
  struct Scan {
    // Events were lost: identities may be stale and are forgotten, not kept
    // while probing again.
    bool lost_events = false;
    std::size_t requests = 0;  // requests this scan answers
  };

  // Returns the scan to start now, or nullopt when one runs (the request is
  // then queued, merged with any other queued one).
  std::optional<Scan> request(bool lost_events) {
    if (running_) {
      if (!queued_) queued_ = Scan{};
      queued_->lost_events |= lost_events;
      ++queued_->requests;
      return std::nullopt;
    }
    running_ = Scan{lost_events, 1};
    return running_;
  }

  // The running scan is done; returns the queued one, which now runs.
  std::optional<Scan> finished() {
    running_ = queued_;
    queued_.reset();
    return running_;
  }

  bool running() const { return running_.has_value(); }
  bool queued() const { return queued_.has_value(); }
  // The scan running now (valid while running()).
  const Scan& current() const { return *running_; }

 private:
  std::optional<Scan> running_;
  std::optional<Scan> queued_;
};

}  // namespace diskgate::daemon
