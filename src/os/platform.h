// The gate's only way to touch the system: mount, unmount, read the mount
// table, lock a directory, spawn and signal a process. Tests replace it; the
// real one (SystemPlatform) is a thin layer over the syscalls, and errno
// becomes an OsError here and only here.
#pragma once

#include <sys/types.h>

#include <optional>
#include <stdexcept>
#include <string>
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

struct ExitStatus {
  bool signalled = false;
  int code = 0;  // exit code, or the signal number when signalled
  bool operator==(const ExitStatus&) const = default;
};

class Platform {
 public:
  virtual ~Platform() = default;

  // mount(2). `data` is the filesystem-specific option string.
  virtual void mount(const std::string& source, const std::string& target, const std::string& fstype,
                     unsigned long flags, const std::string& data) = 0;
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
  virtual Child spawn(const std::vector<std::string>& argv) = 0;
  // Sends `signal` to the process group `pgid`; a group already gone is fine.
  virtual void signal_group(pid_t pgid, int signal) = 0;
  // Reaps the child once its pidfd is readable; nullopt while it runs. Closes
  // the pidfd when it returns a status.
  virtual std::optional<ExitStatus> reap(const Child& child) = 0;
};

// Parses /proc/self/mountinfo text (fields octal-escaped as the kernel does).
// Malformed lines are skipped.
std::vector<MountEntry> parse_mountinfo(const std::string& text);

class SystemPlatform final : public Platform {
 public:
  void mount(const std::string& source, const std::string& target, const std::string& fstype,
             unsigned long flags, const std::string& data) override;
  void unmount(const std::string& target, bool lazy) override;
  std::vector<MountEntry> mounts_at(const std::string& target) override;
  std::string lock_directory(const std::string& dir) override;
  Child spawn(const std::vector<std::string>& argv) override;
  void signal_group(pid_t pgid, int signal) override;
  std::optional<ExitStatus> reap(const Child& child) override;
};

}  // namespace diskgate::os
