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
#include <sys/wait.h>
#include <unistd.h>

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
      return value.substr(value.find_first_not_of(" \t"));
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
  const std::string ram = tmp / "ram";
  REQUIRE(mkdir(ram.c_str(), 0755) == 0);
  mounts.add(ram);
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
  const std::string dir = tmp / "mnt";
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  mounts.add(dir);
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
  const std::string dir = tmp / "mnt";
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  mounts.add(dir);

  try {
    platform.mount(fs.loop.node(), dir, "nosuchfs", 0, "");
    FAIL("mount with a bad fstype succeeded");
  } catch (const OsError& e) {
    CHECK(e.error_number == ENODEV);
    CHECK(std::string(e.what()) ==
          "mount " + fs.loop.node() + " on " + dir + " (nosuchfs): " + std::strerror(ENODEV));
  }
  try {
    platform.mount(fs.loop.node(), dir, "ext4", 0, "no_such_option");
    FAIL("mount with a bad option succeeded");
  } catch (const OsError& e) {
    CHECK(e.error_number == EINVAL);
    CHECK_THAT(e.what(), Catch::Contains(fs.loop.node()) && Catch::Contains("ext4") &&
                             Catch::Contains("no_such_option"));
  }
  // An ext4 filesystem is not btrfs.
  CHECK_THROWS_AS(platform.mount(fs.loop.node(), dir, "btrfs", 0, ""), OsError);
  CHECK(platform.mounts_at(dir).empty());
}

TEST_CASE("unmount: busy, lazy, and nothing mounted") {
  NEED_MKFS();
  TempDir tmp;
  Ext4 fs(tmp);
  MountGuard mounts;
  SystemPlatform platform;
  const std::string dir = tmp / "mnt";
  REQUIRE(mkdir(dir.c_str(), 0755) == 0);
  mounts.add(dir);

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
  // posix_spawn returns once exec succeeded, so this is sleep's own status.
  CHECK(proc_field(child->pid, "Name") == "sleep");
  CHECK(proc_field(getpid(), "SigBlk") != "0000000000000000");  // the test's mask is in place
  CHECK(proc_field(child->pid, "SigBlk") == "0000000000000000");
  // glibc's posix_spawn leaves its two reserved signals (32 and 33, below
  // SIGRTMIN, never used by programs; glibc and Go reinstall their handlers at
  // start) ignored in the child; every other signal is at its default.
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

}  // namespace
}  // namespace diskgate::os
