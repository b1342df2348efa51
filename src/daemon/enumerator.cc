#include "daemon/enumerator.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include "daemon/probe_worker.h"  // lower_thread_priority

namespace diskgate::daemon {

Enumerator::Enumerator(Enumerate enumerate) : enumerate_(std::move(enumerate)) {
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) throw std::system_error(errno, std::generic_category(), "enumerator: eventfd");
}

Enumerator::~Enumerator() {
  if (thread_.joinable()) thread_.join();
  ::close(event_fd_);
}

bool Enumerator::start() {
  if (thread_.joinable()) return false;
  try {
    thread_ = std::thread([this] {
      lower_thread_priority();
      try {
        outcome_ = enumerate_();
      } catch (const std::exception& e) {
        outcome_ = std::string(e.what());
      }
      std::uint64_t one = 1;
      (void)!::write(event_fd_, &one, sizeof one);
    });
  } catch (const std::system_error&) {
    return false;
  }
  return true;
}

Enumerator::Outcome Enumerator::collect() {
  std::uint64_t count;
  (void)!::read(event_fd_, &count, sizeof count);
  if (thread_.joinable()) thread_.join();  // the thread wrote the eventfd last: joins at once
  Outcome out = std::move(outcome_);
  outcome_ = {};
  return out;
}

}  // namespace diskgate::daemon
