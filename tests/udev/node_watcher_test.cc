// NodeWatcher against real inotify on loop device nodes in /dev.
// Waiting for "nothing happened" would need a sleep; instead each such test
// writes a sentinel file after the action: inotify keeps order, so once the
// sentinel is reported, any event the action caused has been read too.
#include "udev/node_watcher.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <fstream>

#include "udev/support.h"

namespace diskgate::udev {
namespace {

using namespace std::chrono_literals;
using testing::LoopDevice;
using testing::TempDir;

constexpr std::array<unsigned char, 8> pattern = {0xd1, 0x5c, 0x6a, 0x7e, 0x00, 0xff, 0x42, 0x17};

void open_close(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(close(fd) == 0);
}

// Receives until `node` is reported written (or gone, with want_gone) or
// the timeout passes; returns everything received.
NodeWatcher::Received wait_for(NodeWatcher& watcher, const std::string& node, bool want_gone = false) {
  NodeWatcher::Received all;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (testing::wait_readable(watcher.fd(), deadline)) {
    auto got = watcher.receive();
    all.written.insert(all.written.end(), got.written.begin(), got.written.end());
    all.gone.insert(all.gone.end(), got.gone.begin(), got.gone.end());
    all.overflowed = all.overflowed || got.overflowed;
    const auto& list = want_gone ? all.gone : all.written;
    if (std::find(list.begin(), list.end(), node) != list.end()) break;
  }
  return all;
}

}  // namespace

TEST_CASE("a write to a loop device's node is reported when it is closed") {
  TempDir dir;
  testing::make_image(dir / "scratch.img", 1 << 20);
  LoopDevice loop(dir / "scratch.img");
  NodeWatcher watcher;
  REQUIRE(watcher.watch(loop.node()));

  int fd = open(loop.node().c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, pattern.data(), pattern.size(), 0) == static_cast<ssize_t>(pattern.size()));
  REQUIRE(close(fd) == 0);

  auto got = wait_for(watcher, loop.node());
  CHECK(got.written == std::vector<std::string>{loop.node()});
  CHECK(got.gone.empty());
  CHECK_FALSE(got.overflowed);
  CHECK(watcher.watching(loop.node()));

  // The write went through the loop device into the image. A udevd that
  // runs may hold the device open past our close, so that close need not be
  // the last one that flushes the device's cache: flush it here.
  int sync_fd = open(loop.node().c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(sync_fd >= 0);
  CHECK(fsync(sync_fd) == 0);
  close(sync_fd);
  std::ifstream image(dir / "scratch.img", std::ios::binary);
  std::array<unsigned char, pattern.size()> head{};
  image.read(reinterpret_cast<char*>(head.data()), head.size());
  CHECK(head == pattern);
}

TEST_CASE("opening a loop device's node read-only and closing it reports nothing") {
  TempDir dir;
  testing::make_image(dir / "scratch.img", 1 << 20);
  testing::make_image(dir / "sentinel", 0);
  LoopDevice loop(dir / "scratch.img");
  NodeWatcher watcher;
  REQUIRE(watcher.watch(loop.node()));
  REQUIRE(watcher.watch(dir / "sentinel"));

  int fd = open(loop.node().c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::array<unsigned char, 512> sector{};
  CHECK(pread(fd, sector.data(), sector.size(), 0) == static_cast<ssize_t>(sector.size()));
  REQUIRE(close(fd) == 0);
  open_close(dir / "sentinel", O_WRONLY);

  auto got = wait_for(watcher, dir / "sentinel");
  CHECK(got.written == std::vector<std::string>{dir / "sentinel"});
}

TEST_CASE("an unwatched node is no longer reported") {
  TempDir dir;
  testing::make_image(dir / "scratch.img", 1 << 20);
  testing::make_image(dir / "sentinel", 0);
  LoopDevice loop(dir / "scratch.img");
  NodeWatcher watcher;
  REQUIRE(watcher.watch(loop.node()));
  REQUIRE(watcher.watch(dir / "sentinel"));
  watcher.unwatch(loop.node());
  CHECK_FALSE(watcher.watching(loop.node()));

  open_close(loop.node(), O_WRONLY);
  open_close(dir / "sentinel", O_WRONLY);

  auto got = wait_for(watcher, dir / "sentinel");
  CHECK(got.written == std::vector<std::string>{dir / "sentinel"});
  CHECK(got.gone.empty());
}

TEST_CASE("a watched partition node deleted by detaching is reported gone and forgotten") {
  TempDir dir;
  testing::make_gpt_image(dir / "gpt.img");
  LoopDevice loop(dir / "gpt.img", /*partscan=*/true);
  const std::string part = loop.node() + "p1";
  NodeWatcher watcher;
  REQUIRE(watcher.watch(part));

  loop.detach();  // drops the partitions; devtmpfs deletes their nodes
  auto got = wait_for(watcher, part, /*want_gone=*/true);
  CHECK(got.gone == std::vector<std::string>{part});
  CHECK_FALSE(watcher.watching(part));
}

TEST_CASE("watching a node that does not exist returns false") {
  TempDir dir;
  NodeWatcher watcher;
  CHECK_FALSE(watcher.watch(dir / "no-such-node"));
  CHECK_FALSE(watcher.watching(dir / "no-such-node"));
}

TEST_CASE("a full inotify queue is reported as overflow") {
  // Two files closed after writing in turn: inotify merges only identical
  // consecutive events, so each close queues one event, beyond the default
  // limit of 16384 (fs.inotify.max_queued_events).
  TempDir dir;
  testing::make_image(dir / "a", 0);
  testing::make_image(dir / "b", 0);
  std::ifstream limit_file("/proc/sys/fs/inotify/max_queued_events");
  long limit = 0;
  REQUIRE(limit_file >> limit);
  if (limit > 200000) SKIP_TEST("fs.inotify.max_queued_events is " + std::to_string(limit) + ", too many to fill");

  NodeWatcher watcher;
  REQUIRE(watcher.watch(dir / "a"));
  REQUIRE(watcher.watch(dir / "b"));
  for (long i = 0; i <= limit / 2 + 1; ++i) {
    open_close(dir / "a", O_WRONLY);
    open_close(dir / "b", O_WRONLY);
  }
  auto got = watcher.receive();
  CHECK(got.overflowed);
  CHECK(got.written == std::vector<std::string>{dir / "a", dir / "b"});  // each once per call
}

}  // namespace diskgate::udev
