// SystemPlatform: the syscalls behind Platform. Every errno is turned into an
// OsError here, with the call, its object and strerror in the message.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "os/platform.h"

extern char** environ;

namespace diskgate::os {
namespace {

[[noreturn]] void fail(const std::string& what, int error_number) {
  throw OsError(what + ": " + std::strerror(error_number), error_number);
}

// fail() with errno, read before the message is formatted: in
// fail(fmt::format(...), errno) the order is unspecified and formatting
// (an allocation) may change errno. Arguments must not touch errno either.
template <typename... Args>
[[noreturn]] void fail_errno(fmt::format_string<Args...> format, Args&&... args) {
  int error_number = errno;
  fail(fmt::format(format, std::forward<Args>(args)...), error_number);
}

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// "/srv/backup/", "/srv//backup" and "/srv/./x/../backup" name the same
// mount point as the kernel's "/srv/backup"; no symlinks are resolved.
std::vector<std::string> path_components(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = std::min(path.find('/', start), path.size());
    std::string part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty() && parts.back() != "..") parts.pop_back();
      else if (path.empty() || path.front() != '/') parts.push_back(part);
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  return parts;
}

std::string normalize(const std::string& path) {
  bool absolute = !path.empty() && path.front() == '/';
  std::string out;
  for (const std::string& part : path_components(path)) out += (out.empty() && !absolute ? "" : "/") + part;
  if (out.empty()) return absolute ? "/" : ".";
  return out;
}

std::string read_file(const char* path) {
  int fd;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) fail_errno("open {}", path);
  Fd guard(fd);
  std::string text;
  char buffer[16384];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read {}", path);
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

std::string signal_name(int signal) {
  if (const char* abbrev = sigabbrev_np(signal)) return std::string("SIG") + abbrev;
  return fmt::format("signal {}", signal);
}

// mkdir -p of a normalized path: missing parents 0755, the last component
// 0700. Modes are set explicitly after mkdir so that the umask does not
// change them.
void make_directories(const std::string& dir) {
  std::vector<std::string> parts = path_components(dir);
  std::string prefix = !dir.empty() && dir.front() == '/' ? "" : ".";
  for (std::size_t i = 0; i < parts.size(); ++i) {
    prefix += "/" + parts[i];
    if (parts[i] == "..") continue;
    bool last = i + 1 == parts.size();
    mode_t mode = last ? 0700 : 0755;
    if (::mkdir(prefix.c_str(), mode) == 0) {
      if (::chmod(prefix.c_str(), mode) != 0) fail_errno("chmod {:o} {}", mode, prefix);
      continue;
    }
    int error = errno;
    if (error != EEXIST) fail(fmt::format("mkdir {}", prefix), error);
    // It exists: fine for a parent that is (or leads to) a directory, as
    // mkdir -p; the last component is checked by the caller.
    struct stat st {};
    if (!last && (::stat(prefix.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
      fail(fmt::format("mkdir {}: {} is not a directory", dir, prefix), ENOTDIR);
  }
}

bool attribute_unsupported(int error) {
  return error == ENOTTY || error == EOPNOTSUPP || error == EINVAL || error == ENOSYS;
}

// The filesystem type of `fd` for a note: its mount table entry, or the
// statfs magic when the table does not name it.
std::string filesystem_name(int fd, dev_t dev) {
  try {
    for (const auto& entry : parse_mountinfo(read_file("/proc/self/mountinfo")))
      if (entry.major == major(dev) && entry.minor == minor(dev)) return entry.fstype;
  } catch (const OsError&) {
    // Only for a note; fall back to the magic.
  }
  struct statfs fs {};
  if (fstatfs(fd, &fs) == 0) return fmt::format("filesystem type {:#x}", static_cast<unsigned long>(fs.f_type));
  return "this filesystem";
}

// waitid's P_PIDFD (Linux 5.4); glibc 2.36 takes it but does not name it.
constexpr idtype_t p_pidfd = static_cast<idtype_t>(3);

}  // namespace

void SystemPlatform::mount(const std::string& source, const std::string& target, const std::string& fstype,
                           unsigned long flags, const std::string& data) {
  if (::mount(source.c_str(), target.c_str(), fstype.c_str(), flags, data.empty() ? nullptr : data.c_str()) != 0) {
    int error = errno;
    std::string what = data.empty() ? fmt::format("mount {} on {} ({})", source, target, fstype)
                                    : fmt::format("mount {} on {} ({}, {})", source, target, fstype, data);
    fail(what, error);
  }
}

void SystemPlatform::unmount(const std::string& target, bool lazy) {
  // UMOUNT_NOFOLLOW: a symlink planted at the mount point must not redirect
  // the unmount elsewhere.
  int flags = UMOUNT_NOFOLLOW | (lazy ? MNT_DETACH : 0);
  if (::umount2(target.c_str(), flags) != 0)
    fail_errno("unmount {}{}", lazy ? "(lazy) " : "", target);
}

std::vector<MountEntry> SystemPlatform::mounts_at(const std::string& target) {
  // The kernel lists the resolved path (mount(2) follows symlinks), so
  // resolve it too; a path that does not resolve has nothing mounted on it
  // anyway, and is compared as written.
  std::string wanted = normalize(target);
  if (char* resolved = ::realpath(target.c_str(), nullptr)) {
    wanted = resolved;
    std::free(resolved);
  }
  std::vector<MountEntry> found;
  for (auto& entry : parse_mountinfo(read_file("/proc/self/mountinfo")))
    if (entry.target == wanted) found.push_back(std::move(entry));
  return found;
}

std::string SystemPlatform::lock_directory(const std::string& dir_name) {
  if (dir_name.empty()) throw OsError("lock_directory: empty path", EINVAL);
  const std::string dir = normalize(dir_name);

  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) throw OsError(fmt::format("lock_directory {}: is a symbolic link", dir), ELOOP);
    if (!S_ISDIR(st.st_mode)) throw OsError(fmt::format("lock_directory {}: not a directory", dir), ENOTDIR);
  } else if (errno == ENOENT) {
    make_directories(dir);
  } else {
    fail_errno("lstat {}", dir);
  }

  // From here on through the descriptor, so that a rename or symlink swap
  // after the check cannot redirect the chmod and ioctl.
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int error = errno;
    if (error == ELOOP) throw OsError(fmt::format("lock_directory {}: is a symbolic link", dir), ELOOP);
    fail(fmt::format("open {}", dir), error);
  }
  Fd guard(fd);

  // Locking the root of a mounted filesystem would lock the data disk itself
  // (and the immutable flag would stay on it): refuse.
  struct statx sx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_MODE, &sx) != 0) fail_errno("statx {}", dir);
  if ((sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
    throw OsError(fmt::format("lock_directory {}: a filesystem is mounted there", dir), EBUSY);
  if (::fstat(fd, &st) != 0) fail_errno("fstat {}", dir);

  int attributes = 0;
  bool supported = true;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &attributes) != 0) {
    int error = errno;
    if (!attribute_unsupported(error)) fail(fmt::format("get attributes (FS_IOC_GETFLAGS) of {}", dir), error);
    supported = false;
  }

  if (supported && (attributes & FS_IMMUTABLE_FL)) {
    if ((st.st_mode & 07777) == 0) return "";  // locked already
    // An immutable inode refuses chmod: lift the flag, chmod, set it again.
    int lifted = attributes & ~FS_IMMUTABLE_FL;
    if (::ioctl(fd, FS_IOC_SETFLAGS, &lifted) != 0)
      fail_errno("clear immutable attribute (FS_IOC_SETFLAGS) of {}", dir);
  }

  if (::fchmod(fd, 0) != 0) fail_errno("chmod 000 {}", dir);

  if (supported) {
    int locked = attributes | FS_IMMUTABLE_FL;
    if (::ioctl(fd, FS_IOC_SETFLAGS, &locked) == 0) return "";
    int error = errno;
    if (!attribute_unsupported(error))
      fail(fmt::format("set immutable attribute (FS_IOC_SETFLAGS) of {}", dir), error);
  }
  return fmt::format("immutable attribute not supported on {}", filesystem_name(fd, st.st_dev));
}

Platform::Child SystemPlatform::spawn(const std::vector<std::string>& argv, const std::optional<Credentials>&) {
  if (argv.empty() || argv[0].empty()) throw OsError("spawn: empty command line", EINVAL);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  posix_spawnattr_t attr;
  if (int r = posix_spawnattr_init(&attr); r != 0) fail("posix_spawnattr_init", r);
  struct AttrGuard {
    posix_spawnattr_t* attr;
    ~AttrGuard() { posix_spawnattr_destroy(attr); }
  } attr_guard{&attr};
  // The daemon blocks the signals it reads through a signalfd and may ignore
  // SIGPIPE; the child starts with none blocked and every disposition at its
  // default. Its own process group lets signal_group reach its children too.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  int r = posix_spawnattr_setflags(&attr, flags);
  if (r == 0) r = posix_spawnattr_setpgroup(&attr, 0);
  if (r == 0) r = posix_spawnattr_setsigmask(&attr, &none);
  if (r == 0) r = posix_spawnattr_setsigdefault(&attr, &all);
  if (r != 0) fail(fmt::format("spawn {}: set attributes", argv[0]), r);

  // glibc's posix_spawnp searches PATH for a name without '/' and returns
  // exec's errno (ENOENT, EACCES, ...) itself, so a program that cannot run
  // is reported here rather than as an exit status 127.
  pid_t pid = -1;
  r = posix_spawnp(&pid, argv[0].c_str(), nullptr, &attr, args.data(), environ);
  if (r != 0) fail(fmt::format("spawn {}", argv[0]), r);

  // Not reaped yet, so the pid cannot have been reused, even if it exited.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int error = errno;
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    fail(fmt::format("pidfd_open {} ({})", pid, argv[0]), error);
  }
  return Child{pid, pidfd};
}

void SystemPlatform::signal_group(pid_t pgid, int signal) {
  // kill(-1) would signal every process we may signal, kill(0) our own group.
  if (pgid <= 1) throw OsError(fmt::format("kill process group {}: not a child's group", pgid), EINVAL);
  if (::kill(-pgid, signal) != 0 && errno != ESRCH) {
    int error = errno;  // signal_name() formats, which may change errno
    fail(fmt::format("kill process group {} ({})", pgid, signal_name(signal)), error);
  }
}

std::optional<ExitStatus> SystemPlatform::reap(const Child& child) {
  siginfo_t info {};
  int r;
  do {
    info.si_pid = 0;
    r = child.pidfd >= 0 ? ::waitid(p_pidfd, static_cast<id_t>(child.pidfd), &info, WEXITED | WNOHANG)
                         : ::waitid(P_PID, static_cast<id_t>(child.pid), &info, WEXITED | WNOHANG);
  } while (r != 0 && errno == EINTR);
  if (r != 0) fail_errno("waitid pid {}", child.pid);
  if (info.si_pid == 0) return std::nullopt;  // still running

  if (child.pidfd >= 0) ::close(child.pidfd);
  ExitStatus status;
  status.signalled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  status.code = info.si_status;
  return status;
}

// TODO(os helper): stubs until implemented.
MountedFilesystem SystemPlatform::inspect_mount(const std::string& target) {
  throw OsError("inspect_mount " + target + ": not implemented", ENOSYS);
}
std::vector<std::pair<std::string, std::string>> SystemPlatform::read_tags(const std::string& node) {
  throw OsError("read_tags " + node + ": not implemented", ENOSYS);
}
std::vector<ProcessInfo> SystemPlatform::processes_in_group(pid_t) { return {}; }
std::optional<std::uint64_t> SystemPlatform::process_start_time(pid_t) { return std::nullopt; }
std::optional<std::string> SystemPlatform::read_text(const std::string&) { return std::nullopt; }
void SystemPlatform::write_text(const std::string&, const std::string&) {}
void SystemPlatform::remove_file(const std::string&) {}
void SystemPlatform::give_root_to(const std::string&, const Credentials&) {}

}  // namespace diskgate::os
