// The gate's only way to touch the system: mount, unmount, read the mount
// table, lock a directory, spawn and signal a process. Tests replace it; the
// real one (SystemPlatform) is a thin layer over the syscalls, and errno
// becomes an OsError here and only here.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace diskgate::os {

// A system call failed. `what()` names the call, its object and the reason:
// "mount /dev/loop0 on /srv/backup (btrfs): Invalid argument".
struct OsError : std::runtime_error {
  OsError(const std::string& what, int error_number) : std::runtime_error(what), error_number(error_number) {}
  int error_number;
};

// One line of /proc/self/mountinfo.
struct MountEntry {
  unsigned major = 0, minor = 0;  // st_dev of the mounted filesystem (btrfs: anonymous)
  std::string root;               // path inside the filesystem ("/" or a subvolume)
  std::string target;             // mount point
  std::string options;            // per-mount options ("rw,noatime")
  std::string fstype;
  std::string source;             // "/dev/loop0"
  std::string super_options;      // per-superblock options ("rw,space_cache=v2,...")
  bool operator==(const MountEntry&) const = default;
};

// What the kernel says is mounted at a target, to check that it is the
// filesystem the gate asked for (never trust the path alone).
struct MountedFilesystem {
  unsigned major = 0, minor = 0;  // st_dev of the mount's root (btrfs: anonymous)
  // The filesystem UUID as the kernel holds it: btrfs from BTRFS_IOC_FS_INFO,
  // others from FS_IOC_GETFSUUID; "" when the kernel does not say (vfat, or a
  // kernel before 6.5). Lowercase, with dashes.
  std::string uuid;
  // btrfs only: every member the kernel uses (BTRFS_IOC_DEV_INFO), by devid.
  struct Member {
    std::uint64_t devid = 0;
    std::string uuid_sub;  // the member's dev_item UUID (blkid's UUID_SUB)
    std::string path;      // as the kernel names it ("/dev/loop3")
    bool operator==(const Member&) const = default;
  };
  std::vector<Member> members;
  std::uint64_t num_devices = 0;  // btrfs: as the kernel counts them
  bool operator==(const MountedFilesystem&) const = default;
};

// A process as /proc tells it: the start time (clock ticks since boot,
// field 22 of /proc/PID/stat) tells a process from a later one that got
// the same pid.
struct ProcessInfo {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
  bool operator==(const ProcessInfo&) const = default;
};

// Whom the program runs as. Unset: as diskgated (root). Set: that uid and
// gid, no supplementary groups, no capabilities, no_new_privs.
struct Credentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  bool operator==(const Credentials&) const = default;
};

struct ExitStatus {
  bool signalled = false;
  int code = 0;  // exit code, or the signal number when signalled
  bool operator==(const ExitStatus&) const = default;
};

class Platform {
 public:
  virtual ~Platform() = default;

  // Mounts `source` on `target`: through the fd-based mount API (fsopen,
  // fsconfig, fsmount, move_mount onto the target opened O_PATH without
  // following symlinks), mount(2) only where the kernel lacks it. `flags`
  // are MS_* flags, `data` the filesystem-specific option string.
  virtual void mount(const std::string& source, const std::string& target, const std::string& fstype,
                     unsigned long flags, const std::string& data) = 0;
  // What the kernel reports for the filesystem mounted at `target` (its
  // topmost mount). Throws OsError when nothing can be asked.
  virtual MountedFilesystem inspect_mount(const std::string& target) = 0;
  // The device's plain-blkid tags (TYPE, UUID, UUID_SUB, LABEL, ...) read
  // from its superblock now, not from any cache. Throws OsError when the
  // device cannot be read.
  virtual std::vector<std::pair<std::string, std::string>> read_tags(const std::string& node) = 0;
  // umount2(2); `lazy` adds MNT_DETACH. Throws OsError (EBUSY when busy).
  virtual void unmount(const std::string& target, bool lazy) = 0;
  // The mounts whose mount point is exactly `target`, bottom to top.
  virtual std::vector<MountEntry> mounts_at(const std::string& target) = 0;

  // Makes sure `dir` exists (created 0700 when missing) and that nothing can
  // write into it while nothing is mounted there: mode 000 and, where the
  // filesystem supports it, the immutable attribute. Returns a note of what
  // could not be done ("immutable attribute not supported on tmpfs"), or "".
  virtual std::string lock_directory(const std::string& dir) = 0;

  // Starts `argv` (argv[0] searched in PATH when it has no '/') with execve,
  // inheriting stdio and the environment, in a new process group whose id is
  // the child's pid. Returns the pid and a pidfd that becomes readable when
  // the child exits. Throws OsError when the program cannot be started.
  struct Child {
    pid_t pid = -1;
    int pidfd = -1;
  };
  // The child gets SIGKILL if diskgated dies (PR_SET_PDEATHSIG: strictly,
  // when the thread that called spawn ends), and runs with `credentials`
  // when given (setgroups(0), setgid, setuid, every capability dropped from
  // all sets and the bounding set, no_new_privs). A step that fails in the
  // child is reported here: "spawn PROGRAM: setuid 65534: Operation not
  // permitted", "spawn PROGRAM: execve as uid 65534 gid 65534: Permission
  // denied".
  virtual Child spawn(const std::vector<std::string>& argv, const std::optional<Credentials>& credentials) = 0;
  // Sends `signal` to the process group `pgid`; a group already gone is fine.
  virtual void signal_group(pid_t pgid, int signal) = 0;
  // Reaps the child once its pidfd is readable; nullopt while it runs. Closes
  // the pidfd when it returns a status.
  virtual std::optional<ExitStatus> reap(const Child& child) = 0;

  // The live processes whose process group is `pgid` (read from /proc;
  // zombies are not live), by pid. Throws OsError for pgid <= 0.
  virtual std::vector<ProcessInfo> processes_in_group(pid_t pgid) = 0;
  // The start time of `pid`; nullopt when no such process runs.
  virtual std::optional<std::uint64_t> process_start_time(pid_t pid) = 0;

  // Small state files under the runtime directory (/run/diskgate): the
  // record of the running program. read_text gives nullopt when the file
  // does not exist, and refuses a symlink (ELOOP); write_text replaces it
  // atomically through PATH.tmp.PID (missing parent directories created
  // 0700, the file 0600; a symlink at PATH is replaced, not followed);
  // remove_file ignores a missing file.
  virtual std::optional<std::string> read_text(const std::string& path) = 0;
  virtual void write_text(const std::string& path, const std::string& text) = 0;
  virtual void remove_file(const std::string& path) = 0;

  // chown of the root directory of the filesystem mounted at `target`, so
  // that a program running as another user can write there, and u+rwx.
  // Through a descriptor opened without following symlinks; refuses a target
  // that is not a mount root (EINVAL). vfat and exfat refuse chown (EPERM).
  virtual void give_root_to(const std::string& target, const Credentials& credentials) = 0;

  // Whether the running kernel lists `fstype` in /proc/filesystems (a
  // module not loaded yet is not listed: ask after a mount failed with
  // ENODEV, which is when the kernel tried to load it). Throws OsError when
  // the file cannot be read.
  virtual bool kernel_supports(const std::string& fstype) = 0;
};

// Parses /proc/self/mountinfo text (fields octal-escaped as the kernel does).
// Malformed lines are skipped.
std::vector<MountEntry> parse_mountinfo(const std::string& text);

// Whether /proc/filesystems text ("nodev\tsysfs\n\text4\n") lists `fstype`.
bool lists_filesystem(std::string_view proc_filesystems, std::string_view fstype);

class SystemPlatform final : public Platform {
 public:
  void mount(const std::string& source, const std::string& target, const std::string& fstype,
             unsigned long flags, const std::string& data) override;
  void unmount(const std::string& target, bool lazy) override;
  std::vector<MountEntry> mounts_at(const std::string& target) override;
  std::string lock_directory(const std::string& dir) override;
  MountedFilesystem inspect_mount(const std::string& target) override;
  std::vector<std::pair<std::string, std::string>> read_tags(const std::string& node) override;
  Child spawn(const std::vector<std::string>& argv, const std::optional<Credentials>& credentials) override;
  void signal_group(pid_t pgid, int signal) override;
  std::optional<ExitStatus> reap(const Child& child) override;
  std::vector<ProcessInfo> processes_in_group(pid_t pgid) override;
  std::optional<std::uint64_t> process_start_time(pid_t pid) override;
  std::optional<std::string> read_text(const std::string& path) override;
  void write_text(const std::string& path, const std::string& text) override;
  void remove_file(const std::string& path) override;
  void give_root_to(const std::string& target, const Credentials& credentials) override;
  bool kernel_supports(const std::string& fstype) override;
};

}  // namespace diskgate::os
