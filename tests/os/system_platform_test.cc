// SystemPlatform against the real kernel: loop devices, ext4, processes.
// main() (tests/udev/support.cc) exits 77 unless we are root with
// /dev/loop-control; every mount, loop device, lock and child is undone by a
// guard, so a failing assertion leaves nothing behind.
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "os/platform.h"
#include "udev/support.h"

namespace diskgate::os {
namespace {

using diskgate::testing::TempDir;
using namespace std::chrono_literals;

bool have_program(const char* name) {
  return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0;
}

int attributes_of(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) FAIL("open " << path << ": " << std::strerror(errno));
  int flags = 0;
  int r = ioctl(fd, FS_IOC_GETFLAGS, &flags);
  int err = errno;
  close(fd);
  if (r != 0) FAIL("FS_IOC_GETFLAGS " << path << ": " << std::strerror(err));
  return flags;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) FAIL("lstat " << path << ": " << std::strerror(errno));
  return st.st_mode & 07777;
}

// Lifts the immutable attribute (and mode 000) from directories that
// lock_directory locked, so that TempDir can remove them. Declare it after
// the TempDir and before the MountGuard.
class Unlocker {
 public:
  void add(const std::string& dir) { dirs_.push_back(dir); }
  ~Unlocker() {
    for (const auto& dir : dirs_) {
      int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;  // never created
      int flags = 0;
      if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL)) {
        flags &= ~FS_IMMUTABLE_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
          std::cerr << "cleanup: cannot clear immutable flag of " << dir << ": " << std::strerror(errno) << "\n";
      }
      fchmod(fd, 0700);
      close(fd);
    }
  }

 private:
  std::vector<std::string> dirs_;
};

// Detaches whatever is still mounted at the targets it was given.
class MountGuard {
 public:
  void add(const std::string& target) { targets_.push_back(target); }
  // A new directory (0755) to mount on, unmounted when the guard goes.
  std::string directory(const std::string& path) {
    REQUIRE(mkdir(path.c_str(), 0755) == 0);
    add(path);
    return path;
  }
  ~MountGuard() {
    for (auto it = targets_.rbegin(); it != targets_.rend(); ++it)
      for (int i = 0; i < 8 && umount2(it->c_str(), MNT_DETACH) == 0; ++i) {
      }
  }

 private:
  std::vector<std::string> targets_;
};

// Kills and reaps a spawned child's group unless the test reaped it.
class ChildGuard {
 public:
  explicit ChildGuard(Platform::Child child) : child_(child) {}
  ~ChildGuard() {
    if (reaped_) return;
    kill(-child_.pid, SIGKILL);
    waitpid(child_.pid, nullptr, 0);
    if (child_.pidfd >= 0) close(child_.pidfd);
  }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  const Platform::Child& operator*() const { return child_; }
  const Platform::Child* operator->() const { return &child_; }
  void reaped() { reaped_ = true; }

 private:
  Platform::Child child_;
  bool reaped_ = false;
};

bool pidfd_readable(int pidfd, std::chrono::milliseconds timeout) {
  pollfd pfd{pidfd, POLLIN, 0};
  return poll(&pfd, 1, static_cast<int>(timeout.count())) == 1 && (pfd.revents & POLLIN);
}

// Waits for the pidfd, then reaps.
ExitStatus wait_exit(SystemPlatform& platform, ChildGuard& child) {
  REQUIRE(pidfd_readable(child->pidfd, 10s));
  auto status = platform.reap(*child);
  REQUIRE(status);
  child.reaped();
  return *status;
}

std::string proc_field(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) {
      auto value = line.substr(key.size() + 1);
      auto start = value.find_first_not_of(" \t");
      return start == std::string::npos ? "" : value.substr(start);
    }
  return "";
}

// From /proc/PID/stat: the state letter and the process group; state '?'
// when the process is gone.
struct ProcStat {
  char state = '?';
  pid_t pgrp = 0;
};
ProcStat proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ProcStat out;
  auto close_paren = text.rfind(')');
  if (close_paren == std::string::npos) return out;
  std::istringstream rest(text.substr(close_paren + 2));
  pid_t ppid = 0;
  rest >> out.state >> ppid >> out.pgrp;
  return out;
}

// Processes of group `pgid` other than its leader.
std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> members;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    if (pid != pgid && proc_stat(pid).pgrp == pgid) members.push_back(pid);
  }
  return members;
}

// A scratch ext4 filesystem on a loop device.
struct Ext4 {
  explicit Ext4(const TempDir& tmp) : image(make(tmp)), loop(image) {}
  static std::string make(const TempDir& tmp) {
    std::string path = tmp / "ext4.img";
    diskgate::testing::make_image(path, 16 << 20);
    diskgate::testing::run("mkfs.ext4 -q -F '" + path + "' >/dev/null 2>&1");
    return path;
  }
  std::string image;
  diskgate::testing::LoopDevice loop;
};

#define NEED_MKFS()                                                         \
  do {                                                                      \
    if (!have_program("mkfs.ext4")) SKIP_TEST("mkfs.ext4 not found in PATH"); \
  } while (0)

TEST_CASE("lock_directory creates a missing directory locked: mode 000, immutable, unwritable") {
  TempDir tmp;
  Unlocker unlock;
  SystemPlatform platform;
  const std::string dir = tmp / "srv/backup/disk";
  unlock.add(dir);
  CHECK(platform.lock_directory(dir) == "");

  CHECK(mode_of(tmp / "srv") == 0755);
  CHECK(mode_of(tmp / "srv/backup") == 0755);
  CHECK(mode_of(dir) == 0);
  CHECK((attributes_of(dir) & FS_IMMUTABLE_FL) != 0);
  // Root passes mode 000; the immutable attribute still stops it.
  errno = 0;
  int fd = open((dir + "/file").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  int err = errno;
  if (fd >= 0) close(fd);
  CHECK(fd < 0);
  CHECK(err == EPERM);
  CHECK(mkdir((dir + "/sub").c_str(), 0700) != 0);

  SECTION("locking again changes nothing, also through an unnormalized path") {
    CHECK(platform.lock_directory(dir + "/") == "");
    CHECK(platform.lock_directory(tmp / "srv/./x/..//backup/disk") == "");
    CHECK(access((tmp / "srv/x").c_str(), F_OK) != 0);
    CHECK(mode_of(dir) == 0);
    CHECK((attributes_of(dir) & FS_IMMUTABLE_FL) != 0);
  }
  SECTION("an immutable directory with another mode is chmodded and stays immutable") {
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(dfd >= 0);
    int flags = attributes_of(dir) & ~FS_IMMUTABLE_FL;
    REQUIRE(ioctl(dfd, FS_IOC_SETFLAGS, &flags) == 0);
    REQUIRE(fchmod(dfd, 0755) == 0);
    flags |= FS_IMMUTABLE_FL;
    REQUIRE(ioctl(dfd, FS_IOC_SETFLAGS, &flags) == 0);
    close(dfd);
    CHECK(platform.lock_directory(dir) == "");
    CHECK(mode_of(dir) == 0);
    CHECK((attributes_of(dir) & FS_IMMUTABLE_FL) != 0);
  }
}

TEST_CASE("lock_directory locks an existing directory without touching its parent") {
  TempDir tmp;
  Unlocker unlock;
  SystemPlatform platform;
  const std::string dir = tmp / "existing";
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  unlock.add(dir);
  mode_t parent_mode = mode_of(tmp.path());
  CHECK(platform.lock_directory(dir) == "");
  CHECK(mode_of(dir) == 0);
  CHECK((attributes_of(dir) & FS_IMMUTABLE_FL) != 0);
  CHECK(mode_of(tmp.path()) == parent_mode);
  CHECK((attributes_of(tmp.path()) & FS_IMMUTABLE_FL) == 0);
}

TEST_CASE("lock_directory refuses a file, a symlink and a path through a file") {
  TempDir tmp;
  SystemPlatform platform;
  const std::string file = tmp / "file";
  diskgate::testing::make_image(file, 0);
  const std::string target = tmp / "target";
  REQUIRE(mkdir(target.c_str(), 0755) == 0);
  const std::string link = tmp / "link";
  REQUIRE(symlink(target.c_str(), link.c_str()) == 0);

  try {
    platform.lock_directory(file);
    FAIL("a regular file was accepted");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOTDIR);
    CHECK_THAT(e.what(), Catch::Contains(file));
  }
  try {
    platform.lock_directory(link);
    FAIL("a symlink was accepted");
  } catch (const OsError& e) {
    CHECK(e.error_number == ELOOP);
    CHECK_THAT(e.what(), Catch::Contains(link) && Catch::Contains("symbolic link"));
  }
  CHECK(mode_of(target) == 0755);  // the symlink's target is untouched
  try {
    platform.lock_directory(file + "/sub");
    FAIL("a path through a file was accepted");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOTDIR);
    CHECK_THAT(e.what(), Catch::Contains(file));
  }
  CHECK_THROWS_AS(platform.lock_directory(""), OsError);
}

TEST_CASE("lock_directory notes a filesystem without the immutable attribute") {
  TempDir tmp;
  MountGuard mounts;
  SystemPlatform platform;
  const std::string ram = mounts.directory(tmp / "ram");
  // ramfs has no FS_IOC_GETFLAGS at all.
  if (mount("none", ram.c_str(), "ramfs", 0, nullptr) != 0) SKIP_TEST(std::string("cannot mount ramfs: ") + std::strerror(errno));
  const std::string dir = ram + "/lock";
  std::string note = platform.lock_directory(dir);
  CHECK(note == "immutable attribute not supported on ramfs");
  CHECK(mode_of(dir) == 0);
}

TEST_CASE("mount, mounts_at and unmount on a locked directory") {
  NEED_MKFS();
  TempDir tmp;
  Ext4 fs(tmp);
  Unlocker unlock;
  MountGuard mounts;
  SystemPlatform platform;
  const std::string dir = tmp / "mnt";
  unlock.add(dir);
  mounts.add(dir);
  REQUIRE(platform.lock_directory(dir) == "");
  CHECK(platform.mounts_at(dir).empty());

  platform.mount(fs.loop.node(), dir, "ext4", MS_NODEV | MS_NOSUID, "");
  auto entries = platform.mounts_at(dir);
  REQUIRE(entries.size() == 1);
  auto [major, minor] = diskgate::testing::device_number(fs.loop.node());
  CHECK(entries[0].source == fs.loop.node());
  CHECK(entries[0].fstype == "ext4");
  CHECK(entries[0].major == major);
  CHECK(entries[0].minor == minor);
  CHECK(entries[0].root == "/");
  CHECK(entries[0].target == dir);
  CHECK_THAT(entries[0].options, Catch::Contains("nodev") && Catch::Contains("nosuid"));
  CHECK(platform.mounts_at(dir + "/") == entries);
  CHECK(platform.mounts_at(dir + "/../mnt") == entries);
  // Through a symlinked parent, as the kernel lists the resolved path.
  const std::string alias = tmp / "alias";
  REQUIRE(symlink(tmp.path().c_str(), alias.c_str()) == 0);
  CHECK(platform.mounts_at(alias + "/mnt") == entries);
  CHECK(platform.mounts_at(tmp.path()).empty());

  // lock_directory never locks a mounted filesystem's root.
  try {
    platform.lock_directory(dir);
    FAIL("a mount point was locked");
  } catch (const OsError& e) {
    CHECK(e.error_number == EBUSY);
    CHECK_THAT(e.what(), Catch::Contains(dir));
  }
  CHECK(mode_of(dir) != 0);

  const std::string file = dir + "/written-while-mounted";
  {
    std::ofstream out(file);
    out << "data\n";
    REQUIRE(out.good());
  }
  REQUIRE(access(file.c_str(), F_OK) == 0);

  platform.unmount(dir, false);
  CHECK(platform.mounts_at(dir).empty());
  CHECK(access(file.c_str(), F_OK) != 0);
  CHECK(mode_of(dir) == 0);
  CHECK((attributes_of(dir) & FS_IMMUTABLE_FL) != 0);
}

TEST_CASE("mount passes data and reports stacked mounts bottom to top") {
  NEED_MKFS();
  TempDir tmp;
  Ext4 fs(tmp);
  MountGuard mounts;
  SystemPlatform platform;
  const std::string dir = mounts.directory(tmp / "mnt");
  platform.mount(fs.loop.node(), dir, "ext4", MS_RDONLY, "errors=remount-ro,commit=17");
  platform.mount("none", dir, "tmpfs", 0, "size=1m");
  auto entries = platform.mounts_at(dir);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].fstype == "ext4");
  CHECK_THAT(entries[0].options, Catch::StartsWith("ro"));
  CHECK_THAT(entries[0].super_options, Catch::Contains("commit=17"));
  CHECK(entries[1].fstype == "tmpfs");
  CHECK(entries[1].source == "none");
  platform.unmount(dir, false);
  REQUIRE(platform.mounts_at(dir).size() == 1);
  CHECK(platform.mounts_at(dir)[0].fstype == "ext4");
  platform.unmount(dir, false);
  CHECK(platform.mounts_at(dir).empty());
}

TEST_CASE("mount errors name the device, target and fstype") {
  NEED_MKFS();
  TempDir tmp;
  Ext4 fs(tmp);
  MountGuard mounts;
  SystemPlatform platform;
  const std::string dir = mounts.directory(tmp / "mnt");

  try {
    platform.mount(fs.loop.node(), dir, "nosuchfs", 0, "");
    FAIL("mount with a bad fstype succeeded");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENODEV);
    CHECK(std::string(e.what()) ==
          "mount " + fs.loop.node() + " on " + dir + " (nosuchfs): fsopen: " + std::strerror(ENODEV));
  }
  try {
    platform.mount(fs.loop.node(), dir, "ext4", 0, "commit=5,no_such_option");
    FAIL("mount with a bad option succeeded");
  } catch (const OsError& e) {
    CHECK(e.error_number == EINVAL);
    // The step, and what the kernel wrote to the fs context: far better
    // than a bare "Invalid argument".
    CHECK(std::string(e.what()) == "mount " + fs.loop.node() + " on " + dir +
                                       " (ext4, commit=5,no_such_option): fsconfig no_such_option: " +
                                       std::strerror(EINVAL) + " (kernel: ext4: Unknown parameter 'no_such_option')");
  }
  try {
    platform.mount(fs.loop.node(), dir, "ext4", 0, "commit=notanumber");
    FAIL("mount with a bad option value succeeded");
  } catch (const OsError& e) {
    CHECK(e.error_number == EINVAL);
    CHECK_THAT(e.what(), Catch::Contains("fsconfig commit=notanumber") && Catch::Contains("(kernel: ext4: "));
  }
  // An ext4 filesystem is not btrfs: the superblock is refused at creation.
  try {
    platform.mount(fs.loop.node(), dir, "btrfs", 0, "");
    FAIL("ext4 mounted as btrfs");
  } catch (const OsError& e) {
    CHECK_THAT(e.what(), Catch::Contains("(btrfs): create superblock: "));
  }
  // A missing source, and flags the fd-based API has no equivalent for.
  CHECK_THROWS_AS(platform.mount(tmp / "no-such-device", dir, "ext4", 0, ""), OsError);
  try {
    platform.mount(fs.loop.node(), dir, "ext4", MS_BIND, "");
    FAIL("MS_BIND accepted");
  } catch (const OsError& e) {
    CHECK(e.error_number == EINVAL);
    CHECK_THAT(e.what(), Catch::Contains("mount flags 0x1000 not supported"));
  }
  CHECK(platform.mounts_at(dir).empty());
}

TEST_CASE("unmount: busy, lazy, and nothing mounted") {
  NEED_MKFS();
  TempDir tmp;
  Ext4 fs(tmp);
  MountGuard mounts;
  SystemPlatform platform;
  const std::string dir = mounts.directory(tmp / "mnt");

  try {
    platform.unmount(dir, false);
    FAIL("unmounting a bare directory succeeded");
  } catch (const OsError& e) {
    CHECK(e.error_number == EINVAL);
    CHECK_THAT(e.what(), Catch::Contains("unmount " + dir));
  }

  platform.mount(fs.loop.node(), dir, "ext4", 0, "");
  int fd = open((dir + "/open").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  try {
    platform.unmount(dir, false);
    FAIL("unmounting a busy filesystem succeeded");
  } catch (const OsError& e) {
    CHECK(e.error_number == EBUSY);
    CHECK_THAT(e.what(), Catch::Contains(dir));
  }
  CHECK(platform.mounts_at(dir).size() == 1);

  platform.unmount(dir, true);
  CHECK(platform.mounts_at(dir).empty());
  CHECK(access((dir + "/open").c_str(), F_OK) != 0);
  // The open file still works on the detached filesystem.
  CHECK(write(fd, "x", 1) == 1);
  close(fd);
}

TEST_CASE("spawn and reap an exit code") {
  SystemPlatform platform;
  ChildGuard child(platform.spawn({"/bin/sh", "-c", "exit 3"}, std::nullopt));
  CHECK(child->pid > 0);
  CHECK(child->pidfd >= 0);
  CHECK(wait_exit(platform, child) == ExitStatus{false, 3});
}

TEST_CASE("spawn searches PATH and passes the environment") {
  SystemPlatform platform;
  setenv("DISKGATE_SPAWN_TEST", "42", 1);
  ChildGuard child(platform.spawn({"sh", "-c", "exit $DISKGATE_SPAWN_TEST"}, std::nullopt));
  unsetenv("DISKGATE_SPAWN_TEST");
  CHECK(wait_exit(platform, child) == ExitStatus{false, 42});
}

TEST_CASE("reap gives nullopt while the child runs") {
  SystemPlatform platform;
  ChildGuard child(platform.spawn({"sleep", "30"}, std::nullopt));
  CHECK_FALSE(platform.reap(*child));
  CHECK_FALSE(pidfd_readable(child->pidfd, 50ms));
  // Its own process group, led by itself.
  CHECK(proc_stat(child->pid).pgrp == child->pid);
  CHECK(getpgid(child->pid) != getpgrp());
  platform.signal_group(child->pid, SIGTERM);
  CHECK(wait_exit(platform, child) == ExitStatus{true, SIGTERM});
}

TEST_CASE("signal_group: an ignored SIGTERM, then SIGKILL for the whole group") {
  SystemPlatform platform;
  // "exit 0" after sleep keeps the shell from exec'ing sleep in its place.
  ChildGuard child(platform.spawn({"/bin/sh", "-c", "trap '' TERM; sleep 30; exit 0"}, std::nullopt));
  std::vector<pid_t> members;
  for (int i = 0; i < 500 && members.empty(); ++i) {
    std::this_thread::sleep_for(10ms);
    members = group_members(child->pid);
  }
  REQUIRE(members.size() == 1);
  const pid_t sleeper = members[0];

  platform.signal_group(child->pid, SIGTERM);
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(platform.reap(*child));
  CHECK(proc_stat(sleeper).state == 'S');

  platform.signal_group(child->pid, SIGKILL);
  CHECK(wait_exit(platform, child) == ExitStatus{true, SIGKILL});
  // The sleeper was killed too (it is gone or a zombie awaiting its reaper).
  ProcStat after{};
  for (int i = 0; i < 500; ++i) {
    after = proc_stat(sleeper);
    if (after.state == '?' || after.state == 'Z') break;
    std::this_thread::sleep_for(10ms);
  }
  CHECK((after.state == '?' || after.state == 'Z'));

  // The group is gone now: signalling it is not an error.
  CHECK_NOTHROW(platform.signal_group(child->pid, SIGTERM));
}

TEST_CASE("signal_group refuses groups that would hit everyone or ourselves") {
  SystemPlatform platform;
  for (pid_t pgid : {-1, 0, 1}) {
    INFO(pgid);
    try {
      platform.signal_group(pgid, 0);
      FAIL("accepted");
    } catch (const OsError& e) {
      CHECK(e.error_number == EINVAL);
    }
  }
}

TEST_CASE("the child starts with no blocked signals and default dispositions") {
  SystemPlatform platform;
  sigset_t term, old_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigaddset(&term, SIGHUP);
  REQUIRE(pthread_sigmask(SIG_BLOCK, &term, &old_mask) == 0);
  struct sigaction ignore {}, old_pipe {};
  ignore.sa_handler = SIG_IGN;
  REQUIRE(sigaction(SIGPIPE, &ignore, &old_pipe) == 0);
  struct Restore {
    sigset_t mask;
    struct sigaction pipe;
    ~Restore() {
      pthread_sigmask(SIG_SETMASK, &mask, nullptr);
      sigaction(SIGPIPE, &pipe, nullptr);
    }
  } restore{old_mask, old_pipe};

  ChildGuard child(platform.spawn({"sleep", "30"}, std::nullopt));
  // spawn returns once exec succeeded, so this is sleep's own status.
  CHECK(proc_field(child->pid, "Name") == "sleep");
  CHECK(proc_field(getpid(), "SigBlk") != "0000000000000000");  // the test's mask is in place
  CHECK(proc_field(child->pid, "SigBlk") == "0000000000000000");
  // glibc refuses to change its two reserved signals (32 and 33, below
  // SIGRTMIN, never used by programs; glibc and Go reinstall their handlers at
  // start), so were they ignored they would stay so; every other signal is
  // at its default.
  const unsigned long long ignored = std::stoull(proc_field(child->pid, "SigIgn"), nullptr, 16);
  const unsigned long long glibc_reserved = (1ULL << (32 - 1)) | (1ULL << (33 - 1));
  CHECK((ignored & ~glibc_reserved) == 0);
  CHECK((ignored & (1ULL << (SIGPIPE - 1))) == 0);
  platform.signal_group(child->pid, SIGTERM);
  CHECK(wait_exit(platform, child) == ExitStatus{true, SIGTERM});
}

TEST_CASE("spawn reports a program that cannot be started") {
  TempDir tmp;
  SystemPlatform platform;
  try {
    platform.spawn({"diskgate-no-such-program", "--flag"}, std::nullopt);
    FAIL("a missing program was started");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOENT);
    CHECK_THAT(e.what(), Catch::Contains("diskgate-no-such-program"));
  }
  const std::string missing = tmp / "missing";
  try {
    platform.spawn({missing}, std::nullopt);
    FAIL("a missing path was started");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOENT);
    CHECK_THAT(e.what(), Catch::Contains(missing));
  }
  const std::string not_executable = tmp / "script";
  {
    std::ofstream out(not_executable);
    out << "#!/bin/sh\nexit 0\n";
  }
  REQUIRE(chmod(not_executable.c_str(), 0644) == 0);
  try {
    platform.spawn({not_executable}, std::nullopt);
    FAIL("a non-executable file was started");
  } catch (const OsError& e) {
    CHECK(e.error_number == EACCES);
    CHECK_THAT(e.what(), Catch::Contains(not_executable));
  }
  CHECK_THROWS_AS(platform.spawn({}, std::nullopt), OsError);
  // No child is left behind by the failures.
  CHECK(waitpid(-1, nullptr, WNOHANG) < 0);
  CHECK(errno == ECHILD);
}

// ---- The fd-based mount API, inspect_mount and read_tags ----

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// blkid's answer, bypassing its cache.
std::string blkid_value(const std::string& tag, const std::string& node) {
  return trimmed(diskgate::testing::run("blkid -c /dev/null -s " + tag + " -o value '" + node + "'"));
}

bool kernel_has_filesystem(const std::string& type) {
  std::ifstream in("/proc/filesystems");
  for (std::string line; std::getline(in, line);)
    if (line.size() >= type.size() && line.compare(line.size() - type.size(), type.size(), type) == 0 &&
        (line.size() == type.size() || line[line.size() - type.size() - 1] == '\t'))
      return true;
  return false;
}

// A scratch btrfs RAID1 over two loop devices. The kernel remembers scanned
// btrfs members by path; they are forgotten again when it goes.
struct Btrfs2 {
  explicit Btrfs2(const TempDir& tmp)
      : images(make(tmp)), a(images.first), b(images.second) {}
  ~Btrfs2() {
    std::system(("btrfs device scan --forget '" + a.node() + "' '" + b.node() + "' >/dev/null 2>&1").c_str());
  }
  static std::pair<std::string, std::string> make(const TempDir& tmp) {
    std::string first = tmp / "btrfs-a.img", second = tmp / "btrfs-b.img";
    diskgate::testing::make_image(first, 128 << 20);
    diskgate::testing::make_image(second, 128 << 20);
    diskgate::testing::run("mkfs.btrfs -q -f -d raid1 -m raid1 '" + first + "' '" + second + "' >/dev/null 2>&1");
    return {first, second};
  }
  std::pair<std::string, std::string> images;
  diskgate::testing::LoopDevice a, b;
};

TEST_CASE("mount goes through fsopen; inspect_mount of an ext4 gives blkid's UUID and st_dev") {
  NEED_MKFS();
  // The fd-based API must be there, or the mount(2) fallback is what runs.
  int probe = static_cast<int>(syscall(SYS_fsopen, "ext4", FSOPEN_CLOEXEC));
  if (probe < 0) SKIP_TEST(std::string("fsopen(ext4): ") + std::strerror(errno));
  close(probe);
  TempDir tmp;
  Ext4 fs(tmp);
  MountGuard mounts;
  SystemPlatform platform;
  const std::string dir = mounts.directory(tmp / "mnt");

  platform.mount(fs.loop.node(), dir, "ext4", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_LAZYTIME,
                 "commit=9");
  auto entries = platform.mounts_at(dir);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].source == fs.loop.node());
  CHECK_THAT(entries[0].options, Catch::StartsWith("rw,") && Catch::Contains("nosuid") && Catch::Contains("nodev") &&
                                     Catch::Contains("noexec") && Catch::Contains("noatime"));
  CHECK_THAT(entries[0].super_options, Catch::Contains("lazytime") && Catch::Contains("commit=9"));

  MountedFilesystem inspected = platform.inspect_mount(dir);
  auto [major, minor] = diskgate::testing::device_number(fs.loop.node());
  CHECK(inspected.major == major);
  CHECK(inspected.minor == minor);
  const std::string uuid = blkid_value("UUID", fs.loop.node());
  REQUIRE(uuid.size() == 36);
  CHECK(inspected.uuid == uuid);
  CHECK(inspected.members.empty());
  CHECK(inspected.num_devices == 0);
  platform.unmount(dir, false);

  SECTION("read-only: both the superblock and the mount") {
    platform.mount(fs.loop.node(), dir, "ext4", MS_RDONLY, "");
    entries = platform.mounts_at(dir);
    REQUIRE(entries.size() == 1);
    CHECK_THAT(entries[0].options, Catch::StartsWith("ro"));
    CHECK_THAT(entries[0].super_options, Catch::StartsWith("ro"));
    platform.unmount(dir, false);
  }
}

TEST_CASE("a two-device btrfs RAID1 mounted with two device= options; inspect_mount names both members") {
  if (!have_program("mkfs.btrfs")) SKIP_TEST("mkfs.btrfs not found in PATH");
  if (!kernel_has_filesystem("btrfs") && std::system("modprobe btrfs >/dev/null 2>&1") != 0)
    SKIP_TEST("the kernel has no btrfs");
  TempDir tmp;
  Btrfs2 fs(tmp);
  MountGuard mounts;
  SystemPlatform platform;
  const std::string dir = mounts.directory(tmp / "mnt");

  // Forget what an earlier scan (udev's) may have registered: only the
  // device= options can make the second member known.
  std::system(("btrfs device scan --forget '" + fs.a.node() + "' '" + fs.b.node() + "' >/dev/null 2>&1").c_str());
  platform.mount(fs.a.node(), dir, "btrfs", MS_NODEV,
                 "device=" + fs.a.node() + ",device=" + fs.b.node() + ",noacl");
  auto entries = platform.mounts_at(dir);
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].fstype == "btrfs");
  CHECK_THAT(entries[0].super_options, Catch::Contains("noacl"));

  MountedFilesystem inspected = platform.inspect_mount(dir);
  CHECK(inspected.uuid == blkid_value("UUID", fs.a.node()));
  CHECK(inspected.uuid == blkid_value("UUID", fs.b.node()));
  CHECK(inspected.num_devices == 2);
  REQUIRE(inspected.members.size() == 2);
  CHECK(inspected.members[0].devid == 1);
  CHECK(inspected.members[1].devid == 2);
  // mkfs numbers the devices in the order given.
  CHECK(inspected.members[0] ==
        MountedFilesystem::Member{1, blkid_value("UUID_SUB", fs.a.node()), fs.a.node()});
  CHECK(inspected.members[1] ==
        MountedFilesystem::Member{2, blkid_value("UUID_SUB", fs.b.node()), fs.b.node()});
  // btrfs gives the mount an anonymous st_dev, not either member's.
  struct stat st {};
  REQUIRE(stat(dir.c_str(), &st) == 0);
  CHECK(inspected.major == ::major(st.st_dev));
  CHECK(inspected.minor == ::minor(st.st_dev));
  platform.unmount(dir, false);

  SECTION("without the second device= the RAID1 is incomplete and refused") {
    std::system(("btrfs device scan --forget '" + fs.a.node() + "' '" + fs.b.node() + "' >/dev/null 2>&1").c_str());
    try {
      platform.mount(fs.a.node(), dir, "btrfs", 0, "device=" + fs.a.node());
      FAIL("a btrfs with a member missing was mounted without 'degraded'");
    } catch (const OsError& e) {
      // btrfs tells its reason to dmesg, not to the fs context.
      CHECK(e.error_number == ENOENT);
      CHECK(std::string(e.what()) == "mount " + fs.a.node() + " on " + dir + " (btrfs, device=" + fs.a.node() +
                                         "): create superblock: " + std::strerror(ENOENT));
    }
    CHECK(platform.mounts_at(dir).empty());
  }
}

TEST_CASE("mount onto a symlink fails with ELOOP and mounts nothing") {
  NEED_MKFS();
  TempDir tmp;
  Ext4 fs(tmp);
  MountGuard mounts;
  SystemPlatform platform;
  const std::string dir = tmp / "real";
  const std::string link = tmp / "link";
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  REQUIRE(symlink(dir.c_str(), link.c_str()) == 0);
  mounts.add(dir);
  mounts.add(link);
  try {
    platform.mount(fs.loop.node(), link, "ext4", 0, "");
    FAIL("mounted through a symlink");
  } catch (const OsError& e) {
    CHECK(e.error_number == ELOOP);
    CHECK(std::string(e.what()) == "mount " + fs.loop.node() + " on " + link + " (ext4): the target is a symbolic link");
  }
  CHECK(platform.mounts_at(dir).empty());
  CHECK(platform.mounts_at(link).empty());
  // Not a directory, and missing.
  const std::string file = tmp / "file";
  diskgate::testing::make_image(file, 0);
  try {
    platform.mount(fs.loop.node(), file, "ext4", 0, "");
    FAIL("mounted on a file");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOTDIR);
  }
  try {
    platform.mount(fs.loop.node(), tmp / "missing", "ext4", 0, "");
    FAIL("mounted on a missing directory");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOENT);
    CHECK_THAT(e.what(), Catch::Contains("open target"));
  }
  auto mountinfo = diskgate::testing::run("cat /proc/self/mountinfo");
  CHECK_THAT(mountinfo, !Catch::Contains(tmp.path()));
}

TEST_CASE("inspect_mount: a filesystem without a UUID gives \"\"; errors name the target") {
  TempDir tmp;
  MountGuard mounts;
  SystemPlatform platform;
  try {
    platform.inspect_mount(tmp / "missing");
    FAIL("inspected a missing directory");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOENT);
    CHECK_THAT(e.what(), Catch::Contains(tmp / "missing"));
  }
  const std::string link = tmp / "link";
  REQUIRE(symlink(tmp.path().c_str(), link.c_str()) == 0);
  try {
    platform.inspect_mount(link);
    FAIL("inspected through a symlink");
  } catch (const OsError& e) {
    CHECK(e.error_number == ELOOP);
  }
  // ramfs has no UUID for FS_IOC_GETFSUUID (ENOTTY).
  const std::string ram = mounts.directory(tmp / "ram");
  platform.mount("none", ram, "ramfs", 0, "");
  MountedFilesystem inspected = platform.inspect_mount(ram);
  CHECK(inspected.uuid == "");
  CHECK(inspected.members.empty());
  struct stat st {};
  REQUIRE(stat(ram.c_str(), &st) == 0);
  CHECK(inspected.major == ::major(st.st_dev));
  CHECK(inspected.minor == ::minor(st.st_dev));
}

// Separate meson test ('system-platform-vfat'): kernels without vfat skip it
// without hiding the other cases' result.
TEST_CASE("vfat: no kernel UUID, and give_root_to says why chown is refused", "[vfat]") {
  TempDir tmp;
  MountGuard mounts;
  SystemPlatform platform;
  if (!have_program("mkfs.vfat")) SKIP_TEST("mkfs.vfat not found in PATH");
  const std::string image = tmp / "vfat.img";
  diskgate::testing::make_image(image, 16 << 20);
  diskgate::testing::run("mkfs.vfat '" + image + "' >/dev/null 2>&1");
  diskgate::testing::LoopDevice loop(image);
  const std::string dir = mounts.directory(tmp / "mnt");
  try {
    platform.mount(loop.node(), dir, "vfat", 0, "");
  } catch (const OsError& e) {
    if (e.error_number == ENODEV) SKIP_TEST(std::string("no vfat in this kernel: ") + e.what());
    throw;
  }
  MountedFilesystem inspected = platform.inspect_mount(dir);
  CHECK(inspected.uuid == "");
  auto [major, minor] = diskgate::testing::device_number(loop.node());
  CHECK(inspected.major == major);
  CHECK(inspected.minor == minor);

  // And vfat has no owners to give.
  try {
    platform.give_root_to(dir, Credentials{65534, 65534});
    FAIL("chown on vfat succeeded");
  } catch (const OsError& e) {
    CHECK(e.error_number == EPERM);
    CHECK_THAT(e.what(), Catch::Contains("chown " + dir + " to 65534:65534: ") && Catch::Contains("vfat"));
  }
}

TEST_CASE("read_tags gives what blkid reads from the device") {
  NEED_MKFS();
  TempDir tmp;
  Ext4 fs(tmp);
  SystemPlatform platform;
  auto tags = platform.read_tags(fs.loop.node());
  // blkid -o export: NAME=value lines, DEVNAME first.
  std::vector<std::pair<std::string, std::string>> expected;
  std::istringstream lines(diskgate::testing::run("blkid -c /dev/null -o export '" + fs.loop.node() + "'"));
  for (std::string line; std::getline(lines, line);) {
    auto equals = line.find('=');
    if (equals == std::string::npos || line.compare(0, equals, "DEVNAME") == 0) continue;
    expected.emplace_back(line.substr(0, equals), line.substr(equals + 1));
  }
  CHECK(tags == expected);
  auto find = [&](const std::string& name) {
    for (const auto& [key, value] : tags)
      if (key == name) return value;
    return std::string("(none)");
  };
  CHECK(find("UUID") == blkid_value("UUID", fs.loop.node()));
  CHECK(find("TYPE") == "ext4");

  // Now, not from a cache: a new UUID written by tune2fs shows at once.
  diskgate::testing::run("tune2fs -U 0b5b7c4e-4ad2-4c0e-9a3e-3a0ee3a0b001 '" + fs.loop.node() + "' >/dev/null 2>&1");
  tags = platform.read_tags(fs.loop.node());
  CHECK(find("UUID") == "0b5b7c4e-4ad2-4c0e-9a3e-3a0ee3a0b001");

  try {
    platform.read_tags(tmp / "no-such-node");
    FAIL("read tags of a missing node");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOENT);
    CHECK_THAT(e.what(), Catch::StartsWith("read tags of " + tmp / "no-such-node"));
  }
}

// ---- spawn with credentials, PDEATHSIG, process groups ----

// Kills a process we know only by pid (a grandchild), if it is still the
// one that had `start_time`.
class PidGuard {
 public:
  void add(pid_t pid) { pids_.push_back(pid); }
  ~PidGuard() {
    SystemPlatform platform;
    for (pid_t pid : pids_)
      if (platform.process_start_time(pid)) kill(pid, SIGKILL);
  }

 private:
  std::vector<pid_t> pids_;
};

// Waits until `pid` is gone or a zombie; false after `timeout`.
bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    char state = proc_stat(pid).state;
    if (state == '?' || state == 'Z') return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

TEST_CASE("spawn with credentials: the uid and gid, no groups, no capabilities, no_new_privs") {
  SystemPlatform platform;
  ChildGuard child(platform.spawn({"sleep", "30"}, Credentials{65534, 65534}));
  // spawn returns once exec succeeded: this is sleep's own status.
  CHECK(proc_field(child->pid, "Name") == "sleep");
  CHECK(proc_field(child->pid, "Uid") == "65534\t65534\t65534\t65534");
  CHECK(proc_field(child->pid, "Gid") == "65534\t65534\t65534\t65534");
  CHECK(proc_field(child->pid, "Groups") == "");
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    INFO(set);
    CHECK(proc_field(child->pid, set) == "0000000000000000");
  }
  CHECK(proc_field(child->pid, "NoNewPrivs") == "1");
  CHECK(proc_stat(child->pid).pgrp == child->pid);
  CHECK(proc_field(child->pid, "SigBlk") == "0000000000000000");
  platform.signal_group(child->pid, SIGTERM);
  CHECK(wait_exit(platform, child) == ExitStatus{true, SIGTERM});

  SECTION("root given explicitly keeps uid 0 but no capability") {
    ChildGuard root(platform.spawn({"sleep", "30"}, Credentials{0, 0}));
    CHECK(proc_field(root->pid, "Uid") == "0\t0\t0\t0");
    CHECK(proc_field(root->pid, "Groups") == "");
    CHECK(proc_field(root->pid, "CapEff") == "0000000000000000");
    CHECK(proc_field(root->pid, "CapPrm") == "0000000000000000");
    CHECK(proc_field(root->pid, "CapBnd") == "0000000000000000");
    CHECK(proc_field(root->pid, "NoNewPrivs") == "1");
  }
  SECTION("without credentials the child keeps ours") {
    ChildGuard same(platform.spawn({"sleep", "30"}, std::nullopt));
    CHECK(proc_field(same->pid, "Uid") == proc_field(getpid(), "Uid"));
    CHECK(proc_field(same->pid, "CapBnd") == proc_field(getpid(), "CapBnd"));
    CHECK(proc_field(same->pid, "NoNewPrivs") == proc_field(getpid(), "NoNewPrivs"));
  }
}

TEST_CASE("spawn as a uid that cannot execute the program names the step") {
  TempDir tmp;  // 0700 root: 65534 cannot reach inside
  SystemPlatform platform;
  const std::string program = tmp / "program";
  {
    std::ofstream out(program);
    out << "#!/bin/sh\nexit 0\n";
  }
  REQUIRE(chmod(program.c_str(), 0755) == 0);
  try {
    platform.spawn({program}, Credentials{65534, 65534});
    FAIL("started a program the user cannot reach");
  } catch (const OsError& e) {
    CHECK(e.error_number == EACCES);
    CHECK(std::string(e.what()) ==
          "spawn " + program + ": execve as uid 65534 gid 65534: " + std::strerror(EACCES));
  }
  // The same program runs as root.
  ChildGuard child(platform.spawn({program}, std::nullopt));
  CHECK(wait_exit(platform, child) == ExitStatus{false, 0});
  // A PATH search as the user: not found, named as such. (A PATH entry
  // the user cannot search would make it EACCES, as execvp says.)
  const std::string old_path = getenv("PATH") ? getenv("PATH") : "";
  setenv("PATH", "/usr/bin:/bin", 1);
  struct RestorePath {
    std::string path;
    ~RestorePath() { setenv("PATH", path.c_str(), 1); }
  } restore_path{old_path};
  try {
    platform.spawn({"diskgate-no-such-program"}, Credentials{65534, 65534});
    FAIL("started a missing program");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENOENT);
    CHECK(std::string(e.what()) == "spawn diskgate-no-such-program: execve as uid 65534 gid 65534 (searched in PATH): " +
                                       std::string(std::strerror(ENOENT)));
  }
  CHECK(waitpid(-1, nullptr, WNOHANG) < 0);
  CHECK(errno == ECHILD);
}

// A process between us and spawn's child: it spawns `sleep 30` (with or
// without credentials), tells us the pid, and waits to be killed.
void pdeathsig_case(const std::optional<Credentials>& credentials) {
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  pid_t middle = fork();
  REQUIRE(middle >= 0);
  if (middle == 0) {
    close(fds[0]);
    pid_t pid = -1;
    try {
      SystemPlatform platform;
      pid = platform.spawn({"sleep", "30"}, credentials).pid;
    } catch (...) {
    }
    if (write(fds[1], &pid, sizeof pid) != sizeof pid) _exit(1);
    for (;;) pause();
  }
  close(fds[1]);
  struct MiddleGuard {
    pid_t pid;
    ~MiddleGuard() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } middle_guard{middle};
  pid_t sleeper = -1;
  REQUIRE(read(fds[0], &sleeper, sizeof sleeper) == sizeof sleeper);
  close(fds[0]);
  REQUIRE(sleeper > 0);
  PidGuard pids;
  pids.add(sleeper);
  CHECK(proc_field(sleeper, "Name") == "sleep");
  CHECK(proc_field(sleeper, "NoNewPrivs") == (credentials ? "1" : proc_field(getpid(), "NoNewPrivs")));

  REQUIRE(kill(middle, SIGKILL) == 0);
  CHECK(wait_gone(sleeper, 2s));
}

TEST_CASE("the spawned program is killed when the spawning process dies (PR_SET_PDEATHSIG)") {
  SECTION("as root") { pdeathsig_case(std::nullopt); }
  // Changing credentials clears the parent-death signal: it must be set after.
  SECTION("with credentials") { pdeathsig_case(Credentials{65534, 65534}); }
}

TEST_CASE("processes_in_group finds the child and its grandchild, with their start times") {
  SystemPlatform platform;
  ChildGuard child(platform.spawn({"/bin/sh", "-c", "sleep 30 & wait"}, std::nullopt));
  std::vector<ProcessInfo> found;
  for (int i = 0; i < 500 && found.size() < 2; ++i) {
    found = platform.processes_in_group(child->pid);
    if (found.size() < 2) std::this_thread::sleep_for(10ms);
  }
  REQUIRE(found.size() == 2);
  CHECK(found[0].pid == child->pid);  // sorted by pid; the shell came first
  const pid_t sleeper = found[1].pid;
  // The shell's fork may not have exec'd sleep yet.
  for (int i = 0; i < 500 && proc_field(sleeper, "Name") != "sleep"; ++i) std::this_thread::sleep_for(10ms);
  CHECK(proc_field(sleeper, "Name") == "sleep");
  for (const auto& process : found) {
    INFO(process.pid);
    auto start = platform.process_start_time(process.pid);
    REQUIRE(start);
    CHECK(*start == process.start_time);
    CHECK(process.start_time > 0);
  }
  // Our own start time is earlier than the child's.
  auto ours = platform.process_start_time(getpid());
  REQUIRE(ours);
  CHECK(*ours <= found[0].start_time);
  // Nothing else of ours is in that group.
  CHECK(platform.processes_in_group(getpgrp()).size() >= 1);
  for (const auto& process : platform.processes_in_group(getpgrp())) CHECK(process.pid != child->pid);

  platform.signal_group(child->pid, SIGKILL);
  // Until reaped the shell is a zombie: not a live process.
  REQUIRE(pidfd_readable(child->pidfd, 10s));
  CHECK_FALSE(platform.process_start_time(child->pid));
  CHECK(wait_exit(platform, child) == ExitStatus{true, SIGKILL});
  CHECK(wait_gone(sleeper, 2s));
  CHECK(platform.processes_in_group(child->pid).empty());
  CHECK_FALSE(platform.process_start_time(child->pid));
  CHECK_FALSE(platform.process_start_time(0));
  CHECK_FALSE(platform.process_start_time(-1));
  CHECK_THROWS_AS(platform.processes_in_group(0), OsError);
}

// ---- state files ----

std::vector<std::string> directory_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

TEST_CASE("write_text, read_text and remove_file: round trip, missing parents, planted symlinks") {
  TempDir tmp;
  SystemPlatform platform;
  const std::string dir = tmp / "run/diskgate/state";
  const std::string path = dir + "/program";
  CHECK_FALSE(platform.read_text(path));

  platform.write_text(path, "pid 42\nstart 1234\n");
  CHECK(platform.read_text(path) == std::optional<std::string>("pid 42\nstart 1234\n"));
  CHECK(mode_of(tmp / "run") == 0700);
  CHECK(mode_of(tmp / "run/diskgate") == 0700);
  CHECK(mode_of(dir) == 0700);
  CHECK(mode_of(path) == 0600);

  platform.write_text(path, "");
  CHECK(platform.read_text(path) == std::optional<std::string>(""));
  std::string big(100000, 'x');
  platform.write_text(path, big);
  CHECK(platform.read_text(path) == big);
  CHECK(directory_entries(dir) == std::vector<std::string>{"program"});  // no temporary left

  SECTION("a symlink at the path is replaced, its target untouched") {
    const std::string victim = tmp / "victim";
    {
      std::ofstream out(victim);
      out << "victim\n";
    }
    platform.remove_file(path);
    REQUIRE(symlink(victim.c_str(), path.c_str()) == 0);
    try {
      platform.read_text(path);
      FAIL("read through a symlink");
    } catch (const OsError& e) {
      CHECK(e.error_number == ELOOP);
      CHECK_THAT(e.what(), Catch::Contains(path));
    }
    platform.write_text(path, "new\n");
    struct stat st {};
    REQUIRE(lstat(path.c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK(platform.read_text(path) == std::optional<std::string>("new\n"));
    CHECK(platform.read_text(victim) == std::optional<std::string>("victim\n"));
  }
  SECTION("a symlink at the temporary name is not followed") {
    const std::string victim = tmp / "victim";
    {
      std::ofstream out(victim);
      out << "victim\n";
    }
    const std::string temporary = path + ".tmp." + std::to_string(getpid());
    REQUIRE(symlink(victim.c_str(), temporary.c_str()) == 0);
    platform.write_text(path, "safe\n");
    CHECK(platform.read_text(path) == std::optional<std::string>("safe\n"));
    CHECK(platform.read_text(victim) == std::optional<std::string>("victim\n"));
    CHECK(directory_entries(dir) == std::vector<std::string>{"program"});
  }
  SECTION("remove_file ignores a missing file") {
    platform.remove_file(path);
    CHECK_FALSE(platform.read_text(path));
    CHECK_NOTHROW(platform.remove_file(path));
    CHECK_NOTHROW(platform.remove_file(tmp / "never/existed"));
  }
  SECTION("errors name the path") {
    const std::string file = tmp / "file";
    platform.write_text(file, "x");
    try {
      platform.write_text(file + "/under", "y");
      FAIL("wrote under a file");
    } catch (const OsError& e) {
      CHECK(e.error_number == ENOTDIR);
      CHECK_THAT(e.what(), Catch::Contains(file + "/under"));
    }
    CHECK_THROWS_AS(platform.write_text("", "x"), OsError);
    CHECK_THROWS_AS(platform.write_text(tmp / "dir/", "x"), OsError);
    try {
      platform.remove_file(tmp.path());
      FAIL("removed a directory");
    } catch (const OsError& e) {
      CHECK_THAT(e.what(), Catch::Contains("remove " + tmp.path()));
    }
  }
}

// ---- give_root_to ----

TEST_CASE("give_root_to chowns a mounted ext4's root, and the user can then write there") {
  NEED_MKFS();
  TempDir tmp;
  Ext4 fs(tmp);
  MountGuard mounts;
  SystemPlatform platform;
  // 65534 must be able to walk to the mount point.
  REQUIRE(chmod(tmp.path().c_str(), 0711) == 0);
  const std::string dir = mounts.directory(tmp / "mnt");

  // Nothing mounted: the bare mount point is never given away.
  try {
    platform.give_root_to(dir, Credentials{65534, 65534});
    FAIL("gave away a bare mount point");
  } catch (const OsError& e) {
    CHECK(e.error_number == EINVAL);
    CHECK_THAT(e.what(), Catch::Contains(dir) && Catch::Contains("no filesystem is mounted there"));
  }
  struct stat st {};
  REQUIRE(stat(dir.c_str(), &st) == 0);
  CHECK(st.st_uid == 0);

  platform.mount(fs.loop.node(), dir, "ext4", 0, "");
  REQUIRE(chmod(dir.c_str(), 0500) == 0);  // even an owner without write gets rwx
  platform.give_root_to(dir, Credentials{65534, 65534});
  REQUIRE(stat(dir.c_str(), &st) == 0);
  CHECK(st.st_uid == 65534);
  CHECK(st.st_gid == 65534);
  CHECK((st.st_mode & 07777) == 0700);

  ChildGuard child(platform.spawn({"/bin/sh", "-c", "echo data > '" + dir + "/by-user'"}, Credentials{65534, 65534}));
  CHECK(wait_exit(platform, child) == ExitStatus{false, 0});
  REQUIRE(stat((dir + "/by-user").c_str(), &st) == 0);
  CHECK(st.st_uid == 65534);

  // Again: nothing changes; back to root works too.
  platform.give_root_to(dir, Credentials{65534, 65534});
  platform.give_root_to(dir, Credentials{0, 0});
  REQUIRE(stat(dir.c_str(), &st) == 0);
  CHECK(st.st_uid == 0);

  const std::string link = tmp / "link";
  REQUIRE(symlink(dir.c_str(), link.c_str()) == 0);
  try {
    platform.give_root_to(link, Credentials{65534, 65534});
    FAIL("followed a symlink");
  } catch (const OsError& e) {
    CHECK(e.error_number == ELOOP);
  }
  REQUIRE(stat(dir.c_str(), &st) == 0);
  CHECK(st.st_uid == 0);
}

}  // namespace
}  // namespace diskgate::os
