#include "daemon/probe_worker.h"

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "gate/fakes.h"
#include "probe/probe.h"

using namespace diskgate;
using daemon::ProbeWorker;
using gate::fakes::ManualLoop;
using namespace std::chrono_literals;

namespace {
devices::KernelDevice device(std::string name, std::string node = "/dev/null") {
  devices::KernelDevice d;
  d.name = std::move(name);
  d.node = std::move(node);
  d.size_bytes = 1 << 20;
  return d;
}

// Waits until `count` results have been collected, for at most rounds × 100 ms.
std::vector<ProbeWorker::Result> collect(ProbeWorker& worker, std::size_t count, int rounds = 100) {
  std::vector<ProbeWorker::Result> results;
  for (int round = 0; round < rounds && results.size() < count; ++round) {
    pollfd fd{worker.fd(), POLLIN, 0};
    if (::poll(&fd, 1, 100) > 0)
      for (auto& r : worker.collect()) results.push_back(std::move(r));
  }
  return results;
}
// A prober whose devices named "hung..." block until released.
struct HangingProber {
  std::mutex mutex;
  std::condition_variable release_all;
  bool released = false;
  std::size_t hanging = 0;

  ProbeWorker::Identify identify() {
    return [this](const devices::KernelDevice& d, const std::string&) {
      if (d.name.rfind("hung", 0) == 0) {
        std::unique_lock lock(mutex);
        ++hanging;
        release_all.wait(lock, [&] { return released; });
      }
      devices::Identity identity;
      identity.state = devices::Identity::State::identified;
      identity.tags = {{"TYPE", d.name}};
      return identity;
    };
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      released = true;
    }
    release_all.notify_all();
  }
  bool hanging_count(std::size_t count) {
    for (int round = 0; round < 100; ++round) {
      {
        std::lock_guard lock(mutex);
        if (hanging == count) return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
};
}  // namespace

TEST_CASE("probe worker: a hung device holds only its own worker") {
  ManualLoop loop;
  HangingProber prober;
  ProbeWorker worker(prober.identify(), loop);
  worker.submit(device("hung"), 1);
  worker.submit(device("a"), 2);
  worker.submit(device("b"), 3);
  auto results = collect(worker, 2);
  REQUIRE(results.size() == 2);
  CHECK(worker.in_flight() == 1);
  for (const auto& r : results) CHECK(r.name != "hung");
  prober.release();
  results = collect(worker, 1);
  REQUIRE(results.size() == 1);
  CHECK(results[0].name == "hung");
  CHECK(results[0].token == 1);
  CHECK(worker.in_flight() == 0);
}

TEST_CASE("probe worker: a burst of jobs runs on at most max_workers threads") {
  ManualLoop loop;
  HangingProber prober;
  ProbeWorker worker(prober.identify(), loop, 3);
  for (int i = 0; i < 40; ++i) {
    worker.submit(device("d" + std::to_string(i)), i);
    CHECK(worker.workers() <= 3);
  }
  CHECK(collect(worker, 40).size() == 40);
  CHECK(worker.workers() <= 3);
  CHECK(worker.in_flight() == 0);
}

TEST_CASE("probe worker: a job that waits stuck_after behind hung workers gets a thread of its own") {
  ManualLoop loop;
  HangingProber prober;
  ProbeWorker worker(prober.identify(), loop, 2, 1s);
  worker.submit(device("hung1"), 1);
  worker.submit(device("hung2"), 2);
  REQUIRE(prober.hanging_count(2));
  worker.submit(device("a"), 3);
  CHECK(worker.workers() == 2);
  CHECK(collect(worker, 1, 3).empty());
  loop.advance(999ms);
  CHECK(worker.workers() == 2);
  loop.advance(1ms);
  CHECK(worker.workers() == 3);
  auto results = collect(worker, 1);
  REQUIRE(results.size() == 1);
  CHECK(results[0].name == "a");
  // Another hung device: the queue holds it until the next period.
  worker.submit(device("hung3"), 4);
  worker.submit(device("b"), 5);
  REQUIRE(prober.hanging_count(3));
  loop.advance(1s);
  results = collect(worker, 1);
  REQUIRE(results.size() == 1);
  CHECK(results[0].name == "b");
  prober.release();
  CHECK(collect(worker, 3).size() == 3);
  CHECK(worker.in_flight() == 0);
}

TEST_CASE("probe worker: submits for a device being probed coalesce into one more probe") {
  ManualLoop loop;
  HangingProber prober;
  std::atomic<int> calls{0};
  auto hanging = prober.identify();
  ProbeWorker worker(
      [&](const devices::KernelDevice& d, const std::string& written) {
        ++calls;
        return hanging(d, written);
      },
      loop);
  worker.submit(device("hung"), 1);
  REQUIRE(prober.hanging_count(1));
  for (std::uint64_t token = 2; token <= 50; ++token) worker.submit(device("hung"), token);
  CHECK(worker.workers() == 1);  // the queued rerun waits for its device, not for a thread
  CHECK(worker.in_flight() == 2);
  prober.release();
  auto results = collect(worker, 2);
  REQUIRE(results.size() == 2);
  CHECK(results[0].token == 1);
  CHECK(results[1].token == 50);  // the newest request's token: the map takes this one
  CHECK(collect(worker, 1, 3).empty());
  CHECK(calls == 2);
  CHECK(worker.in_flight() == 0);
}

TEST_CASE("probe worker: submits for a queued device replace its job") {
  ManualLoop loop;
  HangingProber prober;
  ProbeWorker worker(prober.identify(), loop, 1, 1s);
  worker.submit(device("hung"), 1);
  REQUIRE(prober.hanging_count(1));
  worker.submit(device("a"), 2);
  worker.submit(device("a"), 3);
  worker.submit(device("a"), 4);
  CHECK(worker.in_flight() == 2);
  loop.advance(1s);  // a rescue thread for "a"
  auto results = collect(worker, 1);
  REQUIRE(results.size() == 1);
  CHECK(results[0].name == "a");
  CHECK(results[0].token == 4);
  prober.release();
  CHECK(collect(worker, 1).size() == 1);
}

TEST_CASE("probe worker: however many disks hang, threads stay within the hard cap") {
  ManualLoop loop;
  HangingProber prober;
  ProbeWorker worker(prober.identify(), loop, 2, 1s);
  REQUIRE(worker.hard_cap() == 2 + ProbeWorker::rescue_workers);
  constexpr int hung = 20;
  std::size_t most = 0;
  for (int i = 0; i < hung; ++i) worker.submit(device("hung" + std::to_string(i)), i + 1);
  worker.submit(device("fine"), 100);
  for (int second = 0; second < 3 * hung; ++second) {
    loop.advance(1s);
    most = std::max(most, worker.workers());
  }
  CHECK(most == worker.hard_cap());
  CHECK(prober.hanging_count(worker.hard_cap()));
  prober.release();
  auto results = collect(worker, hung + 1);
  CHECK(results.size() == hung + 1);
  CHECK(worker.workers() <= worker.hard_cap());
  CHECK(worker.in_flight() == 0);
}

TEST_CASE("probe worker: an exception from the prober becomes an unreadable identity") {
  ManualLoop loop;
  ProbeWorker worker([](const devices::KernelDevice&, const std::string&) -> devices::Identity { throw std::runtime_error("boom"); },
                     loop);
  worker.submit(device("x"), 7);
  auto results = collect(worker, 1);
  REQUIRE(results.size() == 1);
  CHECK(results[0].identity.state == devices::Identity::State::unreadable);
  CHECK(results[0].identity.error == "boom");
}

TEST_CASE("identify_device: the real prober on an image, a missing node and no medium") {
  // The seam crossed for real: a vfat fixture decompressed to a file.
  auto dir = std::filesystem::temp_directory_path() / ("probe-worker-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  std::string image = (dir / "fat.img").string();
  const char* fixtures = std::getenv("FIXTURES");
  std::string fixture = std::string(fixtures ? fixtures : "fixtures") + "/images/vfat-fat12-floppy.img.gz";
  REQUIRE(std::filesystem::exists(fixture));
  REQUIRE(std::system(("gzip -dc '" + fixture + "' > '" + image + "'").c_str()) == 0);

  devices::Identity found = daemon::identify_device(device("img", image));
  CHECK(found.state == devices::Identity::State::identified);
  CHECK(probe::tag_value(found.tags, "TYPE") == "vfat");

  devices::Identity missing = daemon::identify_device(device("gone", (dir / "nothing").string()));
  CHECK(missing.state == devices::Identity::State::unreadable);
  CHECK(missing.error == "No such file or directory");

  devices::KernelDevice empty = device("loop9", image);
  empty.size_bytes = 0;
  CHECK(daemon::identify_device(empty).error == "no medium");
}
