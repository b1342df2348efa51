// SystemPlatform: the syscalls behind Platform. Every errno is turned into an
// OsError here, with the call, its object and strerror in the message.
#include <dirent.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>  // glibc 2.36: the fd-based mount API's constants (and <linux/mount.h>)
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "os/platform.h"
#include "os/proc_stat.h"
#include "probe/format.h"
#include "probe/probe_path.h"
#include "probe/source.h"

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

// mkdir -p of a normalized path: missing parents `parents_mode`, the last
// component 0700. Modes are set explicitly after mkdir so that the umask
// does not change them.
void make_directories(const std::string& dir, mode_t parents_mode = 0755) {
  std::vector<std::string> parts = path_components(dir);
  std::string prefix = !dir.empty() && dir.front() == '/' ? "" : ".";
  for (std::size_t i = 0; i < parts.size(); ++i) {
    prefix += "/" + parts[i];
    if (parts[i] == "..") continue;
    bool last = i + 1 == parts.size();
    mode_t mode = last ? 0700 : parents_mode;
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

// The kernel's error messages about a failed fsconfig, from the fs context
// ("e ext4: Unknown parameter 'x'" lines), joined with "; "; "" when none.
// Reading consumes them.
std::string kernel_messages(int fs) {
  std::string out;
  char buffer[4096];
  for (int i = 0; i < 32; ++i) {  // the kernel keeps at most 8
    ssize_t n = ::read(fs, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // ENODATA: no more
    std::string_view message(buffer, static_cast<std::size_t>(n));
    while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
    if (message.size() < 2 || message.substr(0, 2) != "e ") continue;
    if (!out.empty()) out += "; ";
    out += message.substr(2);
  }
  return out;
}

// What spawn's child does between fork and exec, prepared by the parent.
struct ChildPlan {
  char** argv = nullptr;
  char** envp = nullptr;
  const char* const* candidates = nullptr;  // paths to try execve on, in order
  std::size_t candidate_count = 0;
  bool drop_privileges = false;
  std::uint32_t uid = 0, gid = 0;
  int last_cap = CAP_LAST_CAP;
  sigset_t no_signals;
  struct sigaction default_action {};
  pid_t parent = 0;
  int report_fd = -1;
};

// The child's steps, reported by number when one fails.
enum class SpawnStep : int {
  setpgid, signals, setgroups, setgid, bounding_set, ambient, setuid, capset, no_new_privs, pdeathsig, execve
};
struct SpawnFailure {
  int step;
  int error;
};

// Async-signal-safe: raw syscalls and _exit only.
[[noreturn]] void child_fail(int report_fd, SpawnStep step, int error) {
  SpawnFailure failure{static_cast<int>(step), error};
  const char* bytes = reinterpret_cast<const char*>(&failure);
  std::size_t left = sizeof failure;
  while (left > 0) {
    ssize_t n = ::write(report_fd, bytes, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes += n;
    left -= static_cast<std::size_t>(n);
  }
  ::_exit(127);
}

// The child of fork(): async-signal-safe calls only (the parent may have had
// other threads holding locks). Raw syscalls for the credentials: glibc's
// setuid family would try to signal the parent's other threads.
[[noreturn]] void run_child(const ChildPlan& plan) {
  const int fd = plan.report_fd;
  // Its own process group, so that signal_group reaches its children too.
  if (::setpgid(0, 0) != 0) child_fail(fd, SpawnStep::setpgid, errno);
  // The daemon blocks the signals it reads through a signalfd and may ignore
  // SIGPIPE: dispositions back to default first (while still blocked), then
  // nothing blocked. glibc refuses its two internal signals: harmless.
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &plan.default_action, nullptr);
  if (::sigprocmask(SIG_SETMASK, &plan.no_signals, nullptr) != 0) child_fail(fd, SpawnStep::signals, errno);

  if (plan.drop_privileges) {
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) child_fail(fd, SpawnStep::setgroups, errno);
    if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) child_fail(fd, SpawnStep::setgid, errno);
    // Before setuid: dropping from the bounding set needs CAP_SETPCAP.
    // EINVAL: a capability this kernel does not have.
    for (int cap = 0; cap <= plan.last_cap; ++cap)
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
        child_fail(fd, SpawnStep::bounding_set, errno);
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
      child_fail(fd, SpawnStep::ambient, errno);
    if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) child_fail(fd, SpawnStep::setuid, errno);
    // setuid away from 0 clears the permitted and effective sets; this also
    // covers uid 0 given explicitly, and the inheritable set.
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capset, &header, data) != 0) child_fail(fd, SpawnStep::capset, errno);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(fd, SpawnStep::no_new_privs, errno);
  }

  // After the credentials: changing them clears the parent-death signal.
  // It fires when the thread that forked ends (the daemon's loop thread).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) child_fail(fd, SpawnStep::pdeathsig, errno);
  // The parent died before that: nobody would stop the program, so do not
  // start it.
  if (::getppid() != plan.parent) ::_exit(127);

  // execvp's rules: a missing or non-directory entry moves on, EACCES is
  // remembered and reported when nothing else ran, anything else stops.
  int error = ENOENT;
  bool denied = false;
  for (std::size_t i = 0; i < plan.candidate_count; ++i) {
    ::execve(plan.candidates[i], plan.argv, plan.envp);
    error = errno;
    if (error == EACCES) denied = true;
    else if (error != ENOENT && error != ENOTDIR && error != ESTALE && error != ENODEV && error != ETIMEDOUT)
      break;
  }
  if (denied && (error == ENOENT || error == ENOTDIR)) error = EACCES;
  child_fail(fd, SpawnStep::execve, error);
}

// The highest capability number the running kernel knows (it may be newer
// than our headers).
int last_capability() {
  try {
    std::string text = read_file("/proc/sys/kernel/cap_last_cap");
    int value = std::atoi(text.c_str());
    if (value > 0 && value < 64) return std::max(value, static_cast<int>(CAP_LAST_CAP));
  } catch (const OsError&) {
  }
  return CAP_LAST_CAP;
}

// open(O_RDONLY|O_DIRECTORY|O_NOFOLLOW): for a symlink the kernel says
// ENOTDIR; make that ELOOP, so the error says what is really there.
int open_directory_nofollow(const std::string& path) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0 && errno == ENOTDIR) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) errno = ELOOP;
    else errno = ENOTDIR;
  }
  return fd;
}

// 16 bytes as a UUID: lowercase, 8-4-4-4-12.
std::string format_uuid(const unsigned char* bytes) {
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += fmt::format("{:02x}", bytes[i]);
  }
  return out;
}

// FS_IOC_GETFSUUID (Linux 6.5): bookworm's kernel headers (6.1) lack it.
struct FsUuid2 {
  std::uint8_t len;
  std::uint8_t uuid[16];
};
constexpr unsigned long fs_ioc_getfsuuid = _IOR(0x15, 0, FsUuid2);

// /proc/PID/stat parsed; nullopt when the process is gone (or the line is
// not what proc(5) says).
std::optional<StatFields> read_proc_stat(pid_t pid) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd;
  do fd = ::open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::nullopt;
  Fd guard(fd);
  char buffer[4096];
  std::size_t size = 0;
  while (size < sizeof buffer) {
    ssize_t n = ::read(fd, buffer + size, sizeof buffer - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;  // ESRCH: it ended between open and read
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  return parse_proc_stat(std::string_view(buffer, size));
}

// waitid's P_PIDFD (Linux 5.4); glibc 2.36 takes it but does not name it.
constexpr idtype_t p_pidfd = static_cast<idtype_t>(3);

}  // namespace

void SystemPlatform::mount(const std::string& source, const std::string& target, const std::string& fstype,
                           unsigned long flags, const std::string& data) {
  const std::string what = data.empty() ? fmt::format("mount {} on {} ({})", source, target, fstype)
                                        : fmt::format("mount {} on {} ({}, {})", source, target, fstype, data);
  // "mount SRC on TARGET (TYPE, DATA): STEP: strerror (kernel: its message)".
  // The step is a string_view: in fail_step("fsopen", errno) building it
  // cannot change errno before it is read.
  auto fail_step = [&what](std::string_view step, int error, const std::string& kernel = "") {
    std::string message = what + ": " + (step.empty() ? "" : std::string(step) + ": ") + std::strerror(error);
    if (!kernel.empty()) message += " (kernel: " + kernel + ")";
    throw OsError(message, error);
  };

  // The target first, without following a symlink planted there (O_PATH
  // with O_NOFOLLOW opens the link itself, so it can be told apart), and
  // before the filesystem is set up: a bad target costs no superblock.
  int target_fd;
  do target_fd = ::open(target.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  while (target_fd < 0 && errno == EINTR);
  if (target_fd < 0) fail_step("open target", errno);
  Fd target_guard(target_fd);
  struct stat st {};
  if (::fstat(target_fd, &st) != 0) fail_step("fstat target", errno);
  if (S_ISLNK(st.st_mode)) throw OsError(what + ": the target is a symbolic link", ELOOP);
  if (!S_ISDIR(st.st_mode)) throw OsError(what + ": the target is not a directory", ENOTDIR);

  if ((flags & MS_MGC_MSK) == MS_MGC_VAL) flags &= ~MS_MGC_MSK;  // the legacy magic number
  const std::string through_fd = fmt::format("/proc/self/fd/{}", target_fd);

  int fs = static_cast<int>(::syscall(SYS_fsopen, fstype.c_str(), FSOPEN_CLOEXEC));
  if (fs < 0 && errno == ENOSYS) {
    // A kernel before 5.2: mount(2), still onto the directory opened above
    // (the /proc magic link names that very inode, whatever the path now is).
    if (::mount(source.c_str(), through_fd.c_str(), fstype.c_str(), flags,
                data.empty() ? nullptr : data.c_str()) != 0)
      fail_step("", errno);
    return;
  }
  if (fs < 0) fail_step("fsopen", errno);
  Fd fs_guard(fs);

  auto set = [&](const std::string& key, const std::string* value) {
    int r = value ? static_cast<int>(::syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key.c_str(), value->c_str(), 0))
                  : static_cast<int>(::syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0));
    if (r == 0) return;
    int error = errno;
    fail_step(value ? fmt::format("fsconfig {}={}", key, *value) : fmt::format("fsconfig {}", key), error,
              kernel_messages(fs));
  };

  if (!source.empty()) set("source", &source);
  // Each comma-separated option on its own: "device=/dev/a,device=/dev/b"
  // sets "device" twice, which btrfs collects.
  std::size_t start = 0;
  while (start <= data.size()) {
    std::size_t end = std::min(data.find(',', start), data.size());
    std::string item = data.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    std::size_t equals = item.find('=');
    if (equals == std::string::npos) {
      set(item, nullptr);
    } else {
      std::string value = item.substr(equals + 1);
      set(item.substr(0, equals), &value);
    }
  }

  // MS_* flags: the superblock's become fsconfig flags, the mount's become
  // MOUNT_ATTR_* for fsmount (MS_RDONLY is both, as mount(2) makes it).
  unsigned attributes = 0;
  unsigned long handled = MS_SILENT;  // the fs context has its own log
  struct FlagMap {
    unsigned long ms;
    const char* sb_flag;
    unsigned attribute;
  };
  static constexpr FlagMap flag_map[] = {
      {MS_RDONLY, "ro", MOUNT_ATTR_RDONLY},
      {MS_SYNCHRONOUS, "sync", 0},
      {MS_DIRSYNC, "dirsync", 0},
      {MS_LAZYTIME, "lazytime", 0},
      {MS_POSIXACL, "posixacl", 0},
      {MS_NOSUID, nullptr, MOUNT_ATTR_NOSUID},
      {MS_NODEV, nullptr, MOUNT_ATTR_NODEV},
      {MS_NOEXEC, nullptr, MOUNT_ATTR_NOEXEC},
      {MS_NOATIME, nullptr, MOUNT_ATTR_NOATIME},
      {MS_RELATIME, nullptr, MOUNT_ATTR_RELATIME},
      {MS_STRICTATIME, nullptr, MOUNT_ATTR_STRICTATIME},
      {MS_NODIRATIME, nullptr, MOUNT_ATTR_NODIRATIME},
      {MS_NOSYMFOLLOW, nullptr, MOUNT_ATTR_NOSYMFOLLOW},
  };
  for (const FlagMap& m : flag_map) {
    if (!(flags & m.ms)) continue;
    handled |= m.ms;
    if (m.sb_flag) set(m.sb_flag, nullptr);
    attributes |= m.attribute;
  }
  if (flags & MS_I_VERSION) {
    // mount(2) passes SB_I_VERSION to every filesystem, which may ignore it;
    // here it is an option that only some parse (ext4): not an error where
    // the filesystem does not know it.
    handled |= MS_I_VERSION;
    if (::syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "iversion", nullptr, 0) != 0) {
      int error = errno;
      if (error != EINVAL) fail_step("fsconfig iversion", error, kernel_messages(fs));
      kernel_messages(fs);  // drop the complaint
    }
  }
  if (flags & ~handled)
    throw OsError(fmt::format("{}: mount flags {:#x} not supported", what, flags & ~handled), EINVAL);

  if (::syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    int error = errno;
    fail_step("create superblock", error, kernel_messages(fs));
  }
  int mnt = static_cast<int>(::syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attributes));
  if (mnt < 0) {
    int error = errno;
    fail_step("fsmount", error, kernel_messages(fs));
  }
  Fd mnt_guard(mnt);
  if (::syscall(SYS_move_mount, mnt, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
    fail_step("move_mount", errno);
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

Platform::Child SystemPlatform::spawn(const std::vector<std::string>& argv,
                                     const std::optional<Credentials>& credentials) {
  if (argv.empty() || argv[0].empty()) throw OsError("spawn: empty command line", EINVAL);
  const std::string& program = argv[0];

  // Everything the child needs is prepared here: between fork and exec (the
  // daemon has other threads) only async-signal-safe calls are allowed, so
  // no allocation, no PATH lookup through getenv, no formatting.
  ChildPlan plan;
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  plan.argv = args.data();
  plan.envp = environ;

  // execvp's search, done up front: every PATH entry in order ("" is the
  // current directory); glibc's default PATH when unset.
  std::vector<std::string> candidates;
  const bool search = program.find('/') == std::string::npos;
  if (!search) {
    candidates.push_back(program);
  } else {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path && *path ? path : "/bin:/usr/bin";
    for (;;) {
      std::string_view dir = dirs.substr(0, dirs.find(':'));
      candidates.push_back(dir.empty() ? program : std::string(dir) + "/" + program);
      if (dir.size() == dirs.size()) break;
      dirs.remove_prefix(dir.size() + 1);
    }
  }
  std::vector<const char*> candidate_paths;
  for (const auto& candidate : candidates) candidate_paths.push_back(candidate.c_str());
  plan.candidates = candidate_paths.data();
  plan.candidate_count = candidate_paths.size();

  if (credentials) {
    plan.drop_privileges = true;
    plan.uid = credentials->uid;
    plan.gid = credentials->gid;
    plan.last_cap = last_capability();
  }
  sigemptyset(&plan.no_signals);
  plan.default_action.sa_handler = SIG_DFL;
  sigemptyset(&plan.default_action.sa_mask);
  plan.parent = ::getpid();

  // The child reports a failed step through this pipe; exec closes it
  // (CLOEXEC), so end of file means the program runs.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) fail_errno("spawn {}: pipe2", program);
  Fd report_read(report[0]);
  plan.report_fd = report[1];

  pid_t pid = ::fork();
  if (pid == 0) run_child(plan);
  int fork_error = errno;
  ::close(report[1]);
  if (pid < 0) fail(fmt::format("spawn {}: fork", program), fork_error);

  SpawnFailure failure{};
  std::size_t got = 0;
  while (got < sizeof failure) {
    ssize_t n = ::read(report[0], reinterpret_cast<char*>(&failure) + got, sizeof failure - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > 0) {
    // The child exits 127 right after writing; reap it so nothing is left.
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (got < sizeof failure) throw OsError(fmt::format("spawn {}: the child failed before exec", program), EIO);
    std::string step;
    switch (static_cast<SpawnStep>(failure.step)) {
      case SpawnStep::setpgid: step = "setpgid"; break;
      case SpawnStep::signals: step = "reset signal mask"; break;
      case SpawnStep::setgroups: step = "setgroups (none)"; break;
      case SpawnStep::setgid: step = fmt::format("setgid {}", plan.gid); break;
      case SpawnStep::bounding_set: step = "drop capability bounding set"; break;
      case SpawnStep::ambient: step = "clear ambient capabilities"; break;
      case SpawnStep::setuid: step = fmt::format("setuid {}", plan.uid); break;
      case SpawnStep::capset: step = "drop capabilities (capset)"; break;
      case SpawnStep::no_new_privs: step = "set no_new_privs"; break;
      case SpawnStep::pdeathsig: step = "set parent-death signal"; break;
      case SpawnStep::execve:
        step = "execve";
        if (credentials) step += fmt::format(" as uid {} gid {}", plan.uid, plan.gid);
        if (search) step += " (searched in PATH)";
        break;
    }
    throw OsError(fmt::format("spawn {}: {}: {}", program, step, std::strerror(failure.error)), failure.error);
  }

  // Not reaped yet, so the pid cannot have been reused, even if it exited.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int error = errno;
    ::kill(-pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    fail(fmt::format("pidfd_open {} ({})", pid, program), error);
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

MountedFilesystem SystemPlatform::inspect_mount(const std::string& target) {
  // The open lands on the root of the topmost mount at `target`.
  int fd = open_directory_nofollow(target);
  if (fd < 0) fail_errno("inspect_mount: open {}", target);
  Fd guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail_errno("inspect_mount: fstat {}", target);
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) fail_errno("inspect_mount: statfs {}", target);

  MountedFilesystem out;
  out.major = major(st.st_dev);
  out.minor = minor(st.st_dev);
  if (static_cast<unsigned long>(fs.f_type) == BTRFS_SUPER_MAGIC) {
    btrfs_ioctl_fs_info_args info {};
    if (::ioctl(fd, BTRFS_IOC_FS_INFO, &info) != 0) fail_errno("inspect_mount: BTRFS_IOC_FS_INFO on {}", target);
    out.uuid = format_uuid(info.fsid);
    out.num_devices = info.num_devices;
    // devids run from 1 to max_id, with gaps where a device was removed.
    for (std::uint64_t devid = 1; devid <= info.max_id; ++devid) {
      btrfs_ioctl_dev_info_args dev {};  // uuid zero: match by devid alone
      dev.devid = devid;
      if (::ioctl(fd, BTRFS_IOC_DEV_INFO, &dev) != 0) {
        if (errno == ENODEV) continue;
        fail_errno("inspect_mount: BTRFS_IOC_DEV_INFO devid {} on {}", devid, target);
      }
      const char* path = reinterpret_cast<const char*>(dev.path);
      out.members.push_back({dev.devid, format_uuid(dev.uuid), std::string(path, ::strnlen(path, sizeof dev.path))});
    }
  } else {
    FsUuid2 uuid {};
    if (::ioctl(fd, fs_ioc_getfsuuid, &uuid) == 0) {
      if (uuid.len == 16) {
        out.uuid = format_uuid(uuid.uuid);
      } else {
        for (unsigned i = 0; i < std::min<unsigned>(uuid.len, sizeof uuid.uuid); ++i)
          out.uuid += fmt::format("{:02x}", uuid.uuid[i]);
      }
    } else if (errno != ENOTTY && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
      fail_errno("inspect_mount: FS_IOC_GETFSUUID on {}", target);
    }
    // else: the filesystem has no UUID for the kernel (vfat), or the kernel
    // is before 6.5.
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> SystemPlatform::read_tags(const std::string& node) {
  std::vector<std::pair<std::string, std::string>> tags;
  try {
    // Read now, from the device itself (FileSource preads it: no cache of
    // ours; the page cache is the kernel's view of the same device).
    probe::Report report = probe::probe_path(node, {});
    for (auto& tag : probe::report_tags(report, false)) tags.emplace_back(std::move(tag.name), std::move(tag.value));
  } catch (const probe::IoError& e) {
    // e.what() names the node: "/dev/sdc: cannot open: No such file or directory".
    throw OsError(fmt::format("read tags of {}", e.what()), e.error_number);
  }
  return tags;
}

std::vector<ProcessInfo> SystemPlatform::processes_in_group(pid_t pgid) {
  if (pgid <= 0) throw OsError(fmt::format("processes in group {}: not a process group", pgid), EINVAL);
  DIR* proc = ::opendir("/proc");
  if (!proc) fail_errno("opendir /proc");
  struct DirGuard {
    DIR* dir;
    ~DirGuard() { ::closedir(dir); }
  } dir_guard{proc};
  std::vector<ProcessInfo> found;
  for (;;) {
    errno = 0;
    dirent* entry = ::readdir(proc);
    if (!entry) {
      if (errno != 0) fail_errno("readdir /proc");
      break;
    }
    std::string_view name = entry->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string_view::npos) continue;
    pid_t pid = 0;
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (error != std::errc() || end != name.data() + name.size()) continue;
    auto stat = read_proc_stat(pid);  // nullopt: it ended meanwhile
    if (!stat || stat->state == 'Z' || stat->pgrp != pgid) continue;
    found.push_back({stat->pid, stat->start_time});
  }
  std::sort(found.begin(), found.end(), [](const ProcessInfo& a, const ProcessInfo& b) { return a.pid < b.pid; });
  return found;
}

std::optional<std::uint64_t> SystemPlatform::process_start_time(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  auto stat = read_proc_stat(pid);
  if (!stat || stat->state == 'Z') return std::nullopt;
  return stat->start_time;
}

std::optional<std::string> SystemPlatform::read_text(const std::string& path) {
  // O_NOFOLLOW: the state files are ours; a symlink there was planted.
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    if (errno == ELOOP) throw OsError(fmt::format("read {}: is a symbolic link", path), ELOOP);
    fail_errno("open {}", path);
  }
  Fd guard(fd);
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("read {}", path);
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

void SystemPlatform::write_text(const std::string& path, const std::string& text) {
  if (path.empty() || path.back() == '/') throw OsError(fmt::format("write {}: not a file name", path), EINVAL);
  const auto slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st {};
  if (::stat(parent.c_str(), &st) != 0) {
    if (errno != ENOENT) fail_errno("write {}: stat {}", path, parent);
    make_directories(normalize(parent), 0700);
  }

  // A fresh file beside the old one, renamed over it: readers see the old
  // text or the new, never a part. O_EXCL|O_NOFOLLOW: nothing planted at
  // the temporary name is followed or reused.
  const std::string temporary = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = -1;
  for (int attempt = 0; attempt < 2; ++attempt) {
    do fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    while (fd < 0 && errno == EINTR);
    // Left over by an earlier process with our pid that died mid-write.
    if (fd < 0 && errno == EEXIST && attempt == 0 && ::unlink(temporary.c_str()) == 0) continue;
    break;
  }
  if (fd < 0) fail_errno("write {}: create {}", path, temporary);
  struct Cleanup {
    const std::string& name;
    int fd;
    bool done = false;
    ~Cleanup() {
      if (fd >= 0) ::close(fd);
      if (!done) ::unlink(name.c_str());
    }
  } cleanup{temporary, fd};

  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("write {}", temporary);
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  int r = ::close(fd);
  cleanup.fd = -1;
  if (r != 0) fail_errno("write {}: close", temporary);
  if (::rename(temporary.c_str(), path.c_str()) != 0) fail_errno("rename {} to {}", temporary, path);
  cleanup.done = true;
}

void SystemPlatform::remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail_errno("remove {}", path);
}

void SystemPlatform::give_root_to(const std::string& target, const Credentials& credentials) {
  int fd = open_directory_nofollow(target);
  if (fd < 0) {
    if (errno == ELOOP) throw OsError(fmt::format("give {} to {}:{}: is a symbolic link", target, credentials.uid,
                                                  credentials.gid), ELOOP);
    fail_errno("give {} to {}:{}: open", target, credentials.uid, credentials.gid);
  }
  Fd guard(fd);

  // Only ever a filesystem's root: chowning the bare mount point (nothing
  // mounted) would hand the directory under it to the user.
  struct statx sx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_MODE, &sx) != 0) fail_errno("statx {}", target);
  if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
    throw OsError(fmt::format("give {} to {}:{}: the kernel does not say whether it is a mount root", target,
                              credentials.uid, credentials.gid), ENOTSUP);
  if (!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
    throw OsError(fmt::format("give {} to {}:{}: no filesystem is mounted there", target, credentials.uid,
                              credentials.gid), EINVAL);

  if (::fchown(fd, credentials.uid, credentials.gid) != 0) {
    int error = errno;
    std::string why = std::strerror(error);
    if (error == EPERM) why += " (filesystems without owners, such as vfat and exfat, refuse chown: use their uid= and gid= mount options)";
    throw OsError(fmt::format("chown {} to {}:{}: {}", target, credentials.uid, credentials.gid, why), error);
  }
  // The owner must be able to write there, whatever the mode was.
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail_errno("fstat {}", target);
  const mode_t mode = st.st_mode & 07777;
  if ((mode & S_IRWXU) != S_IRWXU && ::fchmod(fd, mode | S_IRWXU) != 0) fail_errno("chmod u+rwx {}", target);
}

bool SystemPlatform::kernel_supports(const std::string& fstype) {
  return lists_filesystem(read_file("/proc/filesystems"), fstype);
}

}  // namespace diskgate::os
