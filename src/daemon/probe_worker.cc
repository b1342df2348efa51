#include "daemon/probe_worker.h"

#include <fcntl.h>
#include <linux/btrfs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

#include "probe/format.h"
#include "probe/probe_path.h"

namespace diskgate::daemon {

struct ProbeWorker::Shared {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::pair<devices::KernelDevice, std::uint64_t>> jobs;
  std::vector<Result> done;
  std::size_t running = 0;  // jobs submitted and not collected
  std::size_t idle = 0;     // workers waiting for a job
  std::size_t workers = 0;
  bool closing = false;
  int event_fd = -1;
  ~Shared() {
    if (event_fd >= 0) ::close(event_fd);
  }
};

namespace {
// Workers beyond the first that found nothing to do for this long end.
constexpr auto idle_lifetime = std::chrono::seconds(30);

void work(std::shared_ptr<ProbeWorker::Shared> shared, ProbeWorker::Identify identify, bool first) {
  std::unique_lock lock(shared->mutex);
  for (;;) {
    ++shared->idle;
    bool woken = shared->wake.wait_for(lock, idle_lifetime, [&] { return shared->closing || !shared->jobs.empty(); });
    --shared->idle;
    if (shared->closing || (!woken && !first)) break;
    if (shared->jobs.empty()) continue;
    auto [device, token] = std::move(shared->jobs.front());
    shared->jobs.pop_front();
    lock.unlock();
    devices::Identity identity;
    try {
      identity = identify(device);
    } catch (const std::exception& e) {
      identity.state = devices::Identity::State::unreadable;
      identity.error = e.what();
    }
    lock.lock();
    shared->done.push_back(ProbeWorker::Result{device.name, token, std::move(identity)});
    std::uint64_t one = 1;
    (void)!::write(shared->event_fd, &one, sizeof one);
  }
  --shared->workers;
}
}  // namespace

ProbeWorker::ProbeWorker(Identify identify) : identify_(std::move(identify)), shared_(std::make_shared<Shared>()) {
  shared_->event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (shared_->event_fd < 0) throw std::system_error(errno, std::generic_category(), "probe worker: eventfd");
}

ProbeWorker::~ProbeWorker() {
  // Workers stuck in a hung read keep `shared_` alive and end when it returns.
  std::lock_guard lock(shared_->mutex);
  shared_->closing = true;
  shared_->wake.notify_all();
}

int ProbeWorker::fd() const { return shared_->event_fd; }

void ProbeWorker::submit(const devices::KernelDevice& device, std::uint64_t token) {
  std::lock_guard lock(shared_->mutex);
  ++shared_->running;
  shared_->jobs.emplace_back(device, token);
  if (shared_->idle >= shared_->jobs.size()) {
    shared_->wake.notify_one();
    return;
  }
  bool first = shared_->workers == 0;
  try {
    std::thread(work, shared_, identify_, first).detach();
    ++shared_->workers;
  } catch (const std::system_error& e) {
    // No thread to be had: an idle worker may still take the job; without
    // any worker, answer now rather than leave it queued forever.
    if (shared_->workers > 0) return;
    shared_->jobs.pop_back();
    devices::Identity identity;
    identity.state = devices::Identity::State::unreadable;
    identity.error = std::string("cannot start a probe thread: ") + e.what();
    shared_->done.push_back(Result{device.name, token, std::move(identity)});
    std::uint64_t one = 1;
    (void)!::write(shared_->event_fd, &one, sizeof one);
  }
}

std::vector<ProbeWorker::Result> ProbeWorker::collect() {
  std::uint64_t count;
  (void)!::read(shared_->event_fd, &count, sizeof count);
  std::lock_guard lock(shared_->mutex);
  std::vector<Result> results;
  results.swap(shared_->done);
  shared_->running -= results.size();
  return results;
}

std::size_t ProbeWorker::in_flight() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->running;
}

namespace {
// Tells the kernel of a btrfs member (BTRFS_IOC_SCAN_DEV), as udev's btrfs
// builtin does, so that a later mount finds every member. Best effort: the
// gate's device= mount option names the members anyway.
void register_btrfs_member(const std::string& node) {
  int control = ::open("/dev/btrfs-control", O_RDWR | O_CLOEXEC);
  if (control < 0) return;
  btrfs_ioctl_vol_args args{};
  std::snprintf(args.name, sizeof args.name, "%s", node.c_str());
  (void)::ioctl(control, BTRFS_IOC_SCAN_DEV, &args);
  ::close(control);
}
}  // namespace

devices::Identity identify_device(const devices::KernelDevice& device) {
  devices::Identity identity;
  if (device.size_bytes == 0) {
    identity.state = devices::Identity::State::unreadable;
    identity.error = "no medium";
    return identity;
  }
  try {
    identity.report = probe::probe_path(device.node, {});
    identity.tags = probe::report_tags(identity.report, false);
    identity.state = identity.report.superblocks.size() == 1 || identity.report.table || identity.report.entry
                         ? devices::Identity::State::identified
                         : devices::Identity::State::unidentified;
    if (identity.report.ambivalent()) identity.error = "ambivalent: several filesystems on the device";
    if (identity.report.superblocks.size() == 1 && identity.report.superblocks.front().btrfs)
      register_btrfs_member(device.node);
  } catch (const probe::IoError& e) {
    identity.state = devices::Identity::State::unreadable;
    identity.error = std::generic_category().message(e.error_number);  // thread-safe, unlike strerror
  }
  return identity;
}

}  // namespace diskgate::daemon
