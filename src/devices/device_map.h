// The live map of block devices: pure, fed events, answers queries.
//
// The daemon turns udev/sysfs news into Events and probe results into
// Identified events; apply() returns what changed. No I/O, no threads: the
// same events always give the same changes.
//
// Probing. A device needs probing when it appears, when its size or
// major:minor changes (its identity is then reset to unprobed), or when the
// caller says its medium may have changed (media_changed: the old identity
// keeps answering until the new result arrives, so a re-probe that finds the
// same contents changes nothing visible). The map emits NeedsProbe{name,
// token}. The token is unique over the map's lifetime; an Identified event is
// taken only when it carries the device's current token, so the result of a
// probe that raced with a removal, a re-add or a newer change is dropped. A
// token is spent once taken (a duplicate result is dropped too). A device of
// size 0 (no medium, detached loop device) is not probed: it becomes
// unreadable with the error "no medium".
//
// Indexes. Only identified devices are indexed, by the plain-blkid tags
// UUID, UUID_SUB, LABEL, PARTUUID and PARTLABEL of Identity.tags (the first
// tag of a name counts). For a btrfs member (an identified device whose
// report has exactly one superblock and it carries a BtrfsMember) the UUID
// and UUID_SUB keys are its fsid and dev_uuid.
//
// Filesystems. Devices with the same UUID form a filesystem.
//  - btrfs: expected = num_devices of the member with the highest generation
//    (on a tie, the largest of their values, the cautious choice). Complete
//    when no member is in conflict and the distinct devids present equal the
//    expected count. More devids than expected is not complete either.
//  - other types: expected 1; complete when exactly one device has the UUID.
//  - Conflict: two devices claiming the same devid or the same UUID_SUB (a dd
//    copy), or two non-btrfs devices with the same UUID, or a non-btrfs device
//    sharing a btrfs fsid. Neither claimant counts as present and the
//    filesystem is not complete while the conflict lasts: mounting with an
//    ambiguous member could write to the wrong copy. The conflict is listed
//    in FilesystemView::conflicts.
//  FilesystemComplete / FilesystemIncomplete report transitions only: a
//  filesystem that becomes complete, and one that was complete and no longer
//  is (a member left, was reset, or a conflicting copy appeared).
//
// Order of changes from one apply(): device changes in processing order
// (for a Snapshot: removals by name, then additions/changes by name; each
// DeviceAdded/DeviceChanged is followed by its NeedsProbe), then
// FilesystemIncomplete by uuid, then FilesystemComplete by uuid.
//
// Pointers returned by queries stay valid until the next apply().
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "devices/device.h"
#include "devices/spec.h"

namespace diskgate::devices {

// ---- Events ----

// A device appeared or its kernel facts changed. Set media_changed for a
// "change" uevent that means new contents (DISK_MEDIA_CHANGE, loop attach).
struct Upsert {
  KernelDevice device;
  bool media_changed = false;
};
// The result of probing `name` for the probe that NeedsProbe{name, token} asked for.
struct Identified {
  std::string name;
  Identity identity;  // state must not be unprobed
  std::uint64_t token = 0;
};
struct Removed {
  std::string name;
};
// Every device there is now (after ENOBUFS: the monitor lost events).
// Devices not listed are removed, the others upserted without media_changed.
// A later entry with the same name wins.
// media_changed: every listed device is upserted with media_changed (a
// rescan: all probed again, identities kept meanwhile), in one event.
// forget_identities (events were lost): a listed device already known with
// the same size and major:minor may still hold other contents (a disk
// swapped unseen), so its identity is forgotten (unprobed, unindexed:
// DeviceChanged) and probed again (NeedsProbe) rather than kept.
struct Snapshot {
  std::vector<KernelDevice> devices;
  bool forget_identities = false;
  bool media_changed = false;
};
using Event = std::variant<Upsert, Identified, Removed, Snapshot>;

// ---- Changes ----

struct DeviceAdded {
  std::string name;
  bool operator==(const DeviceAdded&) const = default;
};
struct DeviceChanged {
  std::string name;
  bool operator==(const DeviceChanged&) const = default;
};
struct DeviceRemoved {
  std::string name;
  std::string node;
  bool operator==(const DeviceRemoved&) const = default;
};
struct NeedsProbe {
  std::string name;
  std::uint64_t token = 0;
  bool operator==(const NeedsProbe&) const = default;
};
struct FilesystemComplete {
  std::string uuid;
  bool operator==(const FilesystemComplete&) const = default;
};
struct FilesystemIncomplete {
  std::string uuid;
  bool operator==(const FilesystemIncomplete&) const = default;
};
using Change = std::variant<DeviceAdded, DeviceChanged, DeviceRemoved, NeedsProbe, FilesystemComplete,
                            FilesystemIncomplete>;
std::ostream& operator<<(std::ostream& out, const Change& change);

// ---- Queries ----

// The btrfs membership an identified device claims; an ambivalent report
// (several superblocks) claims none, so it cannot be assembled into a
// filesystem. Null for everything else.
const probe::BtrfsMember* btrfs_member(const Device& device);

// Devices that claim the same place in one filesystem.
struct Conflict {
  std::vector<std::uint64_t> devids;     // btrfs: the devids involved
  std::vector<std::string> uuid_subs;    // btrfs: the UUID_SUBs involved
  std::vector<std::string> nodes;        // the claimants, sorted
  bool operator==(const Conflict&) const = default;
};

struct FilesystemView {
  std::string uuid;   // as the members report it
  std::string type;   // "btrfs", "ext4", ...
  std::string label;
  std::uint64_t expected = 1;  // btrfs num_devices; 1 for the others
  std::uint64_t present = 0;   // members that count (not in conflict)
  std::vector<std::string> devices;  // nodes; btrfs: by devid, then name
  // Devids 1..expected that no device claims. Left empty when a member's
  // devid exceeds expected (ids are sparse after a device removal, so which
  // ones are missing is unknown) or expected is implausibly large.
  std::vector<std::uint64_t> missing_devids;
  std::vector<Conflict> conflicts;
  bool complete = false;
  // btrfs: "device=/dev/A,device=/dev/B" for the members that count, by
  // devid; empty for the others.
  std::string mount_data;
};

struct Resolution {
  // Matching devices: the members of one btrfs filesystem by devid, or
  // else sorted by name.
  std::vector<const Device*> devices;
  // More than one device matched and they are not the distinct members of
  // a single btrfs filesystem (a dd copy, two filesystems with one label, a
  // bare UUID matching a UUID and a PARTUUID on different devices...).
  bool ambiguous = false;
};

class DeviceMap {
 public:
  std::vector<Change> apply(const Event& event);

  const Device* find(std::string_view name) const;
  // The device whose node is `node` ("/dev/sda1"), if any.
  const Device* find_node(std::string_view node) const;
  std::vector<const Device*> all() const;  // sorted by kernel name
  Resolution resolve(const Spec& spec) const;
  std::optional<FilesystemView> filesystem(std::string_view uuid) const;  // uuid in any case
  std::vector<FilesystemView> filesystems() const;                         // by folded uuid
  // The token of the probe the map waits for, if any.
  std::optional<std::uint64_t> pending_probe(std::string_view name) const;
  // How many filesystem views were computed so far (queries included): the
  // work an event costs, for the tests that keep it constant as the map grows.
  std::uint64_t views_built() const { return views_built_; }

 private:
  struct Entry {
    Device device;
    std::optional<std::uint64_t> pending;
  };
  enum Key { key_uuid, key_uuid_sub, key_label, key_partuuid, key_partlabel, key_count };
  using Index = std::map<std::string, std::set<std::string>, std::less<>>;

  void upsert(const KernelDevice& kernel, bool media_changed, std::vector<Change>& out);
  void remove(const std::string& name, std::vector<Change>& out);
  void identified(const Identified& event, std::vector<Change>& out);
  void snapshot(const Snapshot& event, std::vector<Change>& out);
  void reset_identity(Entry& entry);
  // NeedsProbe for the partitions of `disk` (a partition's name begins with
  // its disk's: sda1, loop0p1, nvme0n1p2), found by name, not by a scan.
  void reprobe_partitions(const KernelDevice& disk, std::vector<Change>& out);
  // NeedsProbe for the disk of `partition`, which was written to or changed.
  void reprobe_disk(const KernelDevice& partition, std::vector<Change>& out);
  void index(const std::string& name, const Device& device);
  void unindex(const std::string& name, const Device& device);
  void index_node(const std::string& name, const std::string& node);
  void unindex_node(const std::string& name, const std::string& node);
  const std::set<std::string>* lookup(Key key, std::string_view value) const;
  FilesystemView view(const std::set<std::string>& names) const;
  void report_filesystems(std::vector<Change>& out);

  std::map<std::string, Entry, std::less<>> devices_;
  Index index_[key_count];
  std::multimap<std::string, std::string, std::less<>> nodes_;  // node -> name (a node is rarely shared)
  std::map<std::string, std::string> complete_;  // folded uuid -> uuid as reported
  // Folded UUIDs whose members changed since the last report: only their
  // completeness can have changed (a probe result that changes nothing costs
  // nothing, whatever the number of filesystems).
  std::set<std::string> dirty_;
  std::uint64_t next_token_ = 1;
  mutable std::uint64_t views_built_ = 0;
};

}  // namespace diskgate::devices
