#include "gate/mount_point.h"

#include <cerrno>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/log.h"
#include "devices/spec.h"

namespace diskgate::gate {

namespace {
std::string tag(const std::vector<std::pair<std::string, std::string>>& tags, std::string_view name) {
  for (const auto& [key, value] : tags)
    if (key == name) return value;
  return "";
}

std::string describe_tags(const std::vector<std::pair<std::string, std::string>>& tags) {
  std::string text;
  for (const char* name : {"TYPE", "UUID", "UUID_SUB", "LABEL"})
    if (std::string value = tag(tags, name); !value.empty()) text += fmt::format("{}{}={}", text.empty() ? "" : " ", name, value);
  return text.empty() ? "no filesystem" : text;
}

bool same_uuid(const std::string& a, const std::string& b) { return devices::fold_uuid(a) == devices::fold_uuid(b); }
}  // namespace

MountPoint::MountPoint(std::string target, os::Platform& platform, std::optional<os::Credentials> owner)
    : target_(std::move(target)), platform_(platform), owner_(owner) {}

MountPoint::~MountPoint() {
  if (!mounted_) return;
  try {
    platform_.unmount(target_, true);
  } catch (...) {
    // Nothing more to try; a restarted diskgated verifies what it finds.
  }
}

std::vector<os::MountEntry> MountPoint::mounts() { return platform_.mounts_at(target_); }

std::string MountPoint::lock() {
  std::string note = platform_.lock_directory(target_);
  locked_ = true;
  return note;
}

void MountPoint::check_members(const SourceState& source) {
  for (std::size_t i = 0; i < source.members.size(); ++i) {
    const std::string& node = source.members[i];
    std::vector<std::pair<std::string, std::string>> tags;
    try {
      tags = platform_.read_tags(node);
    } catch (const os::OsError& e) {
      throw MountError(fmt::format("refusing to mount {}: cannot read {} again: {}", source.fs_uuid, node, e.what()));
    }
    // Everything the map identified the member by, the label included: a
    // disk swapped while events were lost may copy the UUIDs but not all.
    std::string expected_sub = i < source.member_uuid_subs.size() ? source.member_uuid_subs[i] : "";
    bool right = tag(tags, "TYPE") == source.fstype &&
                 (source.fs_uuid.empty() || same_uuid(tag(tags, "UUID"), source.fs_uuid)) &&
                 (expected_sub.empty() || same_uuid(tag(tags, "UUID_SUB"), expected_sub)) &&
                 tag(tags, "LABEL") == source.label;
    if (!right)
      throw MountError(fmt::format("refusing to mount: {} no longer holds {} UUID={}{} LABEL=\"{}\" (it has {} now)",
                                   node, source.fstype, source.fs_uuid,
                                   expected_sub.empty() ? "" : " UUID_SUB=" + expected_sub, source.label,
                                   describe_tags(tags)));
  }
}

void MountPoint::check_mounted(const SourceState& source) {
  os::MountedFilesystem kernel = platform_.inspect_mount(target_);
  if (source.fstype == "btrfs") {
    std::set<std::string> expected, found;
    for (const std::string& sub : source.member_uuid_subs)
      if (!sub.empty()) expected.insert(devices::fold_uuid(sub));
    for (const auto& member : kernel.members) found.insert(devices::fold_uuid(member.uuid_sub));
    if (!same_uuid(kernel.uuid, source.fs_uuid) || (!expected.empty() && expected != found)) {
      std::vector<std::string> kernel_members;
      for (const auto& member : kernel.members)
        kernel_members.push_back(fmt::format("devid {} {} ({})", member.devid, member.uuid_sub, member.path));
      throw MountError(fmt::format("{} holds btrfs {} with members [{}], not {} with [{}]", target_, kernel.uuid,
                                   fmt::join(kernel_members, ", "), source.fs_uuid, fmt::join(expected, ", ")));
    }
    return;
  }
  if (!kernel.uuid.empty()) {
    if (!source.fs_uuid.empty() && !same_uuid(kernel.uuid, source.fs_uuid))
      throw MountError(fmt::format("{} holds UUID={} ({}:{}), not {} UUID={} ({})", target_, kernel.uuid,
                                   kernel.major, kernel.minor, source.fstype, source.fs_uuid, source.device));
    return;
  }
  // The kernel keeps no UUID for this type (vfat, exFAT): the mounted
  // superblock's device number must be the device's.
  if (source.device_major != 0 && (kernel.major != source.device_major || kernel.minor != source.device_minor))
    throw MountError(fmt::format("{} holds device {}:{}, not {} ({}:{})", target_, kernel.major, kernel.minor,
                                 source.device, source.device_major, source.device_minor));
}

void MountPoint::mount(const SourceState& source, unsigned long flags, const std::string& data) {
  check_members(source);
  try {
    platform_.mount(source.device, target_, source.fstype, flags, data);
  } catch (const os::OsError& e) {
    // ENODEV: the kernel had no such type and could not load a module for it.
    if (e.error_number == ENODEV && !platform_.kernel_supports(source.fstype))
      throw UnsupportedFilesystem(fmt::format(
          "the running kernel does not support {} (/proc/filesystems does not list it): cannot mount {}; waiting "
          "for a kernel with {} (then Start, or restart diskgated)",
          source.fstype, source.device, source.fstype));
    throw;
  }
  // A mount that does not show in the mount table (a racing unmount, a
  // namespace mix-up) is no mount: say so rather than look at the bare
  // directory underneath.
  if (mounts().empty()) throw MountError(fmt::format("{} is not mounted after mount(2) returned", target_));
  locked_ = false;
  try {
    check_mounted(source);
    if (owner_ && source.fstype != "vfat" && source.fstype != "exfat") platform_.give_root_to(target_, *owner_);
  } catch (const std::exception& e) {
    // Never keep a filesystem we cannot vouch for: off it goes at once. The
    // directory underneath is still locked.
    locked_ = true;
    std::string why = e.what();
    try {
      platform_.unmount(target_, true);
    } catch (const os::OsError& unmount_error) {
      why += fmt::format("; and then: {}", unmount_error.what());
    }
    throw MountError(why);
  }
  mounted_ = true;
  uuid_ = source.fs_uuid;
  members_ = source.members;
}

void MountPoint::adopt(const SourceState& source) {
  check_mounted(source);
  mounted_ = true;
  locked_ = false;
  uuid_ = source.fs_uuid;
  members_ = source.members;
}

void MountPoint::forget() {
  mounted_ = false;
  uuid_.clear();
  members_.clear();
}

std::string MountPoint::unmount() {
  if (!mounted_) return "";
  std::string error;
  try {
    platform_.unmount(target_, false);
  } catch (const os::OsError& e) {
    if (e.error_number == EBUSY) {
      // The program is gone; whatever still holds the mount cannot make us
      // write to the wrong disk once it is detached.
      log(Level::warning, "gate: {} is busy: detaching it lazily", target_);
      error = detach();
    } else if (e.error_number != EINVAL) {  // EINVAL: not mounted any more
      error = e.what();
    }
  }
  log(Level::notice, "gate: unmounted {}", target_);
  forget();
  try {
    std::string note = lock();
    if (!note.empty()) log(Level::debug, "gate: {}: {}", target_, note);
  } catch (const os::OsError& e) {
    if (error.empty()) error = e.what();
  }
  return error;
}

std::string MountPoint::detach() {
  std::string error;
  try {
    platform_.unmount(target_, true);
  } catch (const os::OsError& e) {
    if (e.error_number != EINVAL) error = e.what();
  }
  forget();
  return error;
}

}  // namespace diskgate::gate
