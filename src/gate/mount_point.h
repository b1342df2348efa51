// The gate's target directory: locked bare while nothing is mounted there,
// and the filesystem mounted on it only after each member's superblock was
// read again and found to be what the map says, and kept only when the
// kernel then reports the filesystem that was asked for. Like cros-disks'
// MountPoint, its destructor detaches what it mounted as a last resort.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gate/source_state.h"
#include "os/platform.h"

namespace diskgate::gate {

// Mounting was refused or undone; what() says why, naming the devices.
struct MountError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The running kernel has no driver for the type (gokrazy's kernel has no
// btrfs or exFAT): no point in trying again until it does.
struct UnsupportedFilesystem : MountError {
  using MountError::MountError;
};

class MountPoint {
 public:
  // `owner`: the program's credentials when it does not run as root; the
  // filesystem's root is given to it after mounting.
  MountPoint(std::string target, os::Platform& platform, std::optional<os::Credentials> owner);
  // Last resort (the daemon unwinding without a clean stop): detaches what
  // it mounted. Never throws.
  ~MountPoint();
  MountPoint(const MountPoint&) = delete;
  MountPoint& operator=(const MountPoint&) = delete;

  const std::string& target() const { return target_; }
  // We mounted (or adopted) the filesystem there.
  bool mounted() const { return mounted_; }
  bool locked() const { return locked_; }
  const std::string& uuid() const { return uuid_; }
  const std::vector<std::string>& members() const { return members_; }

  // What the mount table has at the target, bottom to top. Throws OsError.
  std::vector<os::MountEntry> mounts();
  // Makes the bare target unwritable; returns a note ("immutable attribute
  // not supported on tmpfs") or "". Throws OsError.
  std::string lock();
  // Checks every member's superblock, mounts, checks what the kernel
  // mounted (unmounting again when it is not `source`), and hands the root
  // to the owner. Throws MountError (UnsupportedFilesystem when the kernel
  // lacks the type) or OsError; nothing stays mounted then.
  void mount(const SourceState& source, unsigned long flags, const std::string& data);
  // Takes over `source`, found mounted already, once the kernel confirms it
  // is that filesystem. Throws MountError or OsError.
  void adopt(const SourceState& source);
  // Unmounts (lazily when busy: the program is gone by then) and locks the
  // bare target again. Returns what went wrong, or "".
  std::string unmount();
  // Detaches at once (MNT_DETACH), for a program that cannot be stopped:
  // new opens no longer reach the disk. Returns what went wrong, or "".
  std::string detach();
  // The kernel no longer shows the mount (unmounted behind our back):
  // nothing to unmount, forget it.
  void forget();

 private:
  // Throws MountError unless every member still holds what `source` says.
  void check_members(const SourceState& source);
  // Throws MountError unless the kernel's view of the target is `source`.
  void check_mounted(const SourceState& source);

  std::string target_;
  os::Platform& platform_;
  std::optional<os::Credentials> owner_;
  bool mounted_ = false;
  bool locked_ = false;
  std::string uuid_;
  std::vector<std::string> members_;
};

}  // namespace diskgate::gate
