#include "daemon/probe_worker.h"

#include <fcntl.h>
#include <linux/btrfs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>

#include "probe/format.h"
#include "probe/probe_path.h"

namespace diskgate::daemon {

struct ProbeWorker::Shared {
  struct Job {
    devices::KernelDevice device;
    std::uint64_t token;
    std::string written;
    gate::Loop::Clock::time_point queued;
  };
  // One device's work: the job to run next, and whether a probe of it runs.
  // Its name is in `order` exactly when it has a job and none runs: a job
  // submitted while one runs waits for it, not for a worker.
  struct Slot {
    std::optional<Job> next;
    bool running = false;
  };
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::string> order;  // devices ready to run, oldest first
  std::map<std::string, Slot, std::less<>> slots;
  std::vector<Result> done;
  std::size_t running = 0;  // results to come or not collected
  std::size_t idle = 0;     // workers waiting for a job
  std::size_t workers = 0;
  bool closing = false;
  int event_fd = -1;
  ~Shared() {
    if (event_fd >= 0) ::close(event_fd);
  }
  // Jobs no idle worker is about to take.
  bool waiting() const { return order.size() > idle; }
  const Job& front() const { return *slots.find(order.front())->second.next; }
  void post(Result result) {
    done.push_back(std::move(result));
    std::uint64_t one = 1;
    (void)!::write(event_fd, &one, sizeof one);
  }
  // Takes the oldest ready job and marks its device running.
  Job take() {
    Slot& slot = slots.find(order.front())->second;
    order.pop_front();
    Job job = std::move(*slot.next);
    slot.next.reset();
    slot.running = true;
    return job;
  }
  // A probe of `name` ended: run it once more if asked meanwhile.
  void ended(const std::string& name) {
    auto it = slots.find(name);
    it->second.running = false;
    if (it->second.next)
      order.push_back(name);
    else
      slots.erase(it);
  }
};

namespace {
// Workers beyond the first that found nothing to do for this long end: a
// burst of hotplug events is over by then.
constexpr auto idle_lifetime = std::chrono::seconds(10);

void work(std::shared_ptr<ProbeWorker::Shared> shared, ProbeWorker::Identify identify, bool first) {
  lower_thread_priority();
  std::unique_lock lock(shared->mutex);
  auto has_news = [&] { return shared->closing || !shared->order.empty(); };
  for (;;) {
    ++shared->idle;
    // The first worker stays, and sleeps without a timeout: an idle daemon
    // wakes for nothing.
    bool woken = true;
    if (first)
      shared->wake.wait(lock, has_news);
    else
      woken = shared->wake.wait_for(lock, idle_lifetime, has_news);
    --shared->idle;
    if (shared->closing || !woken) break;
    ProbeWorker::Shared::Job job = shared->take();
    lock.unlock();
    devices::Identity identity;
    try {
      identity = identify(job.device, job.written);
    } catch (const std::exception& e) {
      identity.state = devices::Identity::State::unreadable;
      identity.error = e.what();
    }
    lock.lock();
    shared->post(ProbeWorker::Result{job.device.name, job.token, std::move(identity)});
    shared->ended(job.device.name);  // a rerun is taken by this worker's next round
  }
  --shared->workers;
}
}  // namespace

ProbeWorker::ProbeWorker(Identify identify, gate::Loop& loop, std::size_t max_workers,
                         gate::Loop::Clock::duration stuck_after)
    : identify_(std::move(identify)),
      loop_(loop),
      max_workers_(std::max<std::size_t>(max_workers, 1)),
      stuck_after_(stuck_after),
      shared_(std::make_shared<Shared>()) {
  shared_->event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (shared_->event_fd < 0) throw std::system_error(errno, std::generic_category(), "probe worker: eventfd");
}

ProbeWorker::~ProbeWorker() {
  if (rescue_timer_) loop_.cancel(*rescue_timer_);
  // Workers stuck in a hung read keep `shared_` alive and end when it returns.
  std::lock_guard lock(shared_->mutex);
  shared_->closing = true;
  shared_->wake.notify_all();
}

int ProbeWorker::fd() const { return shared_->event_fd; }

bool ProbeWorker::start_worker() {
  try {
    std::thread(work, shared_, identify_, shared_->workers == 0).detach();
    ++shared_->workers;
    return true;
  } catch (const std::system_error&) {
    return false;
  }
}

void ProbeWorker::submit(const devices::KernelDevice& device, std::uint64_t token, const std::string& written) {
  auto now = loop_.now();
  std::lock_guard lock(shared_->mutex);
  Shared::Slot& slot = shared_->slots[device.name];
  if (slot.next) {
    // Still queued (or waiting for its running probe): the newest wins, in
    // the same place in line; one result comes for both.
    slot.next->device = device;
    slot.next->token = token;
    if (!written.empty()) slot.next->written = written;
    return;
  }
  ++shared_->running;
  slot.next = Shared::Job{device, token, written, now};
  if (slot.running) return;  // runs once more when the current probe ends
  shared_->order.push_back(device.name);
  if (!shared_->waiting()) {
    shared_->wake.notify_one();
    return;
  }
  if (shared_->workers < max_workers_ && start_worker()) return;
  if (shared_->workers == 0) {
    // No thread to be had at all: answer now rather than leave it queued.
    shared_->order.pop_back();
    shared_->slots.erase(device.name);
    devices::Identity identity;
    identity.state = devices::Identity::State::unreadable;
    identity.error = "cannot start a probe thread";
    shared_->post(Result{device.name, token, std::move(identity)});
    return;
  }
  arm_rescue(now);
}

void ProbeWorker::arm_rescue(gate::Loop::Clock::time_point queued) {
  if (rescue_timer_) return;
  auto delay = std::max(queued + stuck_after_ - loop_.now(), gate::Loop::Clock::duration::zero());
  rescue_timer_ = loop_.after(delay, [this] { rescue_waiting_job(); });
}

void ProbeWorker::rescue_waiting_job() {
  rescue_timer_.reset();
  std::lock_guard lock(shared_->mutex);
  if (!shared_->waiting()) return;
  // Every worker has been busy for as long as the oldest job waited: one more
  // thread, beyond max_workers, for it. At most one a period, so a stuck
  // hub grows the pool slowly, and never beyond the hard cap: with that many
  // disks hung, the rest wait for one of them to come back (or for the
  // kernel to fail their reads) rather than cost a thread each.
  if (shared_->workers >= hard_cap()) return;  // a worker that ends frees a place; submit() re-arms
  bool started = loop_.now() - shared_->front().queued >= stuck_after_ && start_worker();
  if (shared_->waiting()) arm_rescue(started ? loop_.now() : shared_->front().queued);
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

std::size_t ProbeWorker::workers() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->workers;
}

void lower_thread_priority() {
  // Linux keeps a nice value per thread: PRIO_PROCESS with a thread id.
  auto tid = static_cast<id_t>(::gettid());
  errno = 0;
  int now = ::getpriority(PRIO_PROCESS, tid);
  if (errno == 0) (void)::setpriority(PRIO_PROCESS, tid, std::min(now + 10, 19));
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

// Makes what was written through `written` visible through `node`: a disk
// and its partitions each have a page cache, which the kernel does not keep
// coherent. Flushes the writer's dirty pages to the device (its close may
// not have yet), then drops the clean pages `node` cached before, which may
// be older. Best effort: a node that is gone has nothing to give.
void see_writes_through(const std::string& written, const std::string& node) {
  if (int fd = ::open(written.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC); fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
  if (int fd = ::open(node.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC); fd >= 0) {
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}
}  // namespace

devices::Identity identify_device(const devices::KernelDevice& device, const std::string& written) {
  devices::Identity identity;
  if (device.size_bytes == 0) {
    identity.state = devices::Identity::State::unreadable;
    identity.error = "no medium";
    return identity;
  }
  if (!written.empty()) see_writes_through(written, device.node);
  try {
    probe::Report report = probe::probe_path(device.node, {});
    identity.tags = probe::report_tags(report, false);
    identity.state = report.superblocks.size() == 1 || report.table || report.entry
                         ? devices::Identity::State::identified
                         : devices::Identity::State::unidentified;
    if (report.ambivalent()) identity.error = "ambivalent: several filesystems on the device";
    if (report.superblocks.size() == 1 && report.superblocks.front().btrfs) {
      identity.btrfs = std::move(report.superblocks.front().btrfs);
      register_btrfs_member(device.node);
    }
  } catch (const probe::IoError& e) {
    identity.state = devices::Identity::State::unreadable;
    identity.error = std::generic_category().message(e.error_number);  // thread-safe, unlike strerror
  }
  return identity;
}

}  // namespace diskgate::daemon
