#include "devices/device_map.h"

#include <algorithm>
#include <array>
#include <numeric>
#include <utility>

namespace diskgate::devices {

namespace {

using State = Identity::State;

// Beyond this many devices a num_devices value is not worth spelling out as
// a list of missing ids (btrfs filesystems have a handful of members).
constexpr std::uint64_t max_listed_devids = 1024;

// Tag name and case folding of each index key, in DeviceMap::Key order.
struct KeySpec {
  std::string_view tag;
  bool fold;
};
constexpr std::array<KeySpec, 5> key_specs{{
    {"UUID", true},
    {"UUID_SUB", true},
    {"LABEL", false},
    {"PARTUUID", true},
    {"PARTLABEL", false},
}};

// The index key of `device` for key number `key`; empty when it has none.
std::string key_value(const Device& device, std::size_t key) {
  if (device.identity.state != State::identified) return {};
  const KeySpec& spec = key_specs[key];
  std::string value = probe::tag_value(device.identity.tags, spec.tag);
  if (const probe::BtrfsMember* member = btrfs_member(device)) {
    if (spec.tag == "UUID") value = member->fsid;
    if (spec.tag == "UUID_SUB") value = member->dev_uuid;
  }
  return spec.fold ? fold_uuid(value) : std::string(value);
}

struct Member {
  const Device* device;
  const probe::BtrfsMember* btrfs;
};

// Groups members that claim the same devid or UUID_SUB (union-find; the
// member count is small).
std::vector<std::size_t> conflict_groups(const std::vector<Member>& members) {
  std::vector<std::size_t> parent(members.size());
  std::iota(parent.begin(), parent.end(), std::size_t{0});
  auto root = [&](std::size_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (std::size_t i = 0; i < members.size(); ++i)
    for (std::size_t j = i + 1; j < members.size(); ++j) {
      const probe::BtrfsMember& a = *members[i].btrfs;
      const probe::BtrfsMember& b = *members[j].btrfs;
      if (a.devid == b.devid || fold_uuid(a.dev_uuid) == fold_uuid(b.dev_uuid)) parent[root(i)] = root(j);
    }
  for (std::size_t i = 0; i < members.size(); ++i) parent[i] = root(i);
  return parent;
}

template <typename... F>
struct overloaded : F... {
  using F::operator()...;
};
template <typename... F>
overloaded(F...) -> overloaded<F...>;

}  // namespace

const probe::BtrfsMember* btrfs_member(const Device& device) {
  const Identity& identity = device.identity;
  if (identity.state != State::identified || !identity.btrfs) return nullptr;
  return &*identity.btrfs;
}

std::ostream& operator<<(std::ostream& out, const Change& change) {
  std::visit(overloaded{
                 [&](const DeviceAdded& c) { out << "DeviceAdded{" << c.name << "}"; },
                 [&](const DeviceChanged& c) { out << "DeviceChanged{" << c.name << "}"; },
                 [&](const DeviceRemoved& c) { out << "DeviceRemoved{" << c.name << ", " << c.node << "}"; },
                 [&](const NeedsProbe& c) { out << "NeedsProbe{" << c.name << ", " << c.token << "}"; },
                 [&](const FilesystemComplete& c) { out << "FilesystemComplete{" << c.uuid << "}"; },
                 [&](const FilesystemIncomplete& c) { out << "FilesystemIncomplete{" << c.uuid << "}"; },
             },
             change);
  return out;
}

// ---- Events ----

std::vector<Change> DeviceMap::apply(const Event& event) {
  std::vector<Change> out;
  std::visit(overloaded{
                 [&](const Upsert& e) {
                   bool known = devices_.contains(e.device.name);  // (a new partition changed nothing)
                   upsert(e.device, e.media_changed, out);
                   if (known && e.media_changed) reprobe_disk(e.device, out);
                 },
                 [&](const Identified& e) { identified(e, out); },
                 [&](const Removed& e) { remove(e.name, out); },
                 [&](const Snapshot& e) { snapshot(e, out); },
             },
             event);
  report_filesystems(out);
  return out;
}

namespace {
// What a client can see of an identity; a re-probe that finds the same is
// no change.
bool same_identity(const Identity& a, const Identity& b) {
  return a.state == b.state && a.tags == b.tags && a.error == b.error && a.btrfs == b.btrfs;
}
}  // namespace

void DeviceMap::reset_identity(Entry& entry) {
  if (entry.device.kernel.size_bytes == 0) {
    entry.device.identity = Identity{};
    entry.device.identity.state = State::unreadable;
    entry.device.identity.error = "no medium";
    entry.pending.reset();
  } else {
    entry.device.identity = Identity{};
    entry.pending = next_token_++;
  }
}

void DeviceMap::upsert(const KernelDevice& kernel, bool media_changed, std::vector<Change>& out) {
  if (kernel.name.empty()) return;
  auto it = devices_.find(kernel.name);
  if (it == devices_.end()) {
    Entry& entry = devices_[kernel.name];
    entry.device.kernel = kernel;
    index_node(kernel.name, kernel.node);
    reset_identity(entry);
    out.emplace_back(DeviceAdded{kernel.name});
    if (entry.pending) out.emplace_back(NeedsProbe{kernel.name, *entry.pending});
    reprobe_partitions(kernel, out);  // a disk back (a synthetic remove, say) with its partitions still there
    return;
  }
  Entry& entry = it->second;
  const KernelDevice& old = entry.device.kernel;
  // Another size or device number means other contents: forget the identity.
  // A "change" uevent (media_changed) may mean new contents, or nothing
  // (a write, udevd's watch): probe again but keep answering with the old
  // identity meanwhile, so that a complete filesystem does not flicker.
  bool contents_gone =
      kernel.major != old.major || kernel.minor != old.minor || kernel.size_bytes != old.size_bytes;
  if (!contents_gone && !media_changed && kernel == old) return;  // a duplicate
  bool facts_changed = kernel != old;
  if (kernel.node != old.node) {
    unindex_node(kernel.name, old.node);
    index_node(kernel.name, kernel.node);
  }
  if (contents_gone) {
    unindex(kernel.name, entry.device);
    entry.device.kernel = kernel;
    reset_identity(entry);
  } else {
    entry.device.kernel = kernel;
    // A new token: a probe already in flight may have read the old contents.
    if (media_changed && kernel.size_bytes != 0) entry.pending = next_token_++;
  }
  if (facts_changed || contents_gone) out.emplace_back(DeviceChanged{kernel.name});
  if ((contents_gone || media_changed) && entry.pending) out.emplace_back(NeedsProbe{kernel.name, *entry.pending});
  if (contents_gone || media_changed) reprobe_partitions(kernel, out);
}

void DeviceMap::reprobe_partitions(const KernelDevice& disk, std::vector<Change>& out) {
  // A partition's PARTUUID and PARTLABEL come from its disk's table, and a
  // mkfs, wipefs or new table on the disk may have overwritten its contents
  // too: probe it again, keeping its identity meanwhile as for a change.
  if (!disk.parent.empty()) return;
  for (auto it = devices_.upper_bound(disk.name); it != devices_.end() && it->first.starts_with(disk.name); ++it) {
    Entry& partition = it->second;
    if (partition.device.kernel.parent != disk.name || partition.device.kernel.size_bytes == 0) continue;
    partition.pending = next_token_++;
    out.emplace_back(NeedsProbe{it->first, *partition.pending});
  }
}

void DeviceMap::reprobe_disk(const KernelDevice& partition, std::vector<Change>& out) {
  // A filesystem made over the whole disk can span a partition's sectors
  // (a mkfs over a disk leaves the kernel's partitions in place; exFAT keeps
  // its label in the root directory, 2 MiB in): a write to the partition may
  // change the disk's identity. Probe it again, keeping its identity meanwhile.
  if (partition.parent.empty()) return;
  auto it = devices_.find(partition.parent);
  if (it == devices_.end() || it->second.device.kernel.size_bytes == 0) return;
  it->second.pending = next_token_++;
  out.emplace_back(NeedsProbe{it->first, *it->second.pending});
}

void DeviceMap::remove(const std::string& name, std::vector<Change>& out) {
  auto it = devices_.find(name);
  if (it == devices_.end()) return;
  unindex(name, it->second.device);
  std::string node = it->second.device.kernel.node;
  unindex_node(name, node);
  devices_.erase(it);
  out.emplace_back(DeviceRemoved{name, std::move(node)});
}

void DeviceMap::identified(const Identified& event, std::vector<Change>& out) {
  auto it = devices_.find(event.name);
  if (it == devices_.end()) return;  // removed since, or never known
  Entry& entry = it->second;
  if (!entry.pending || *entry.pending != event.token) return;  // stale or duplicate
  if (event.identity.state == State::unprobed) return;          // not a result
  entry.pending.reset();
  if (same_identity(entry.device.identity, event.identity)) return;  // a re-probe found the same
  unindex(event.name, entry.device);
  entry.device.identity = event.identity;
  index(event.name, entry.device);
  out.emplace_back(DeviceChanged{event.name});
}

void DeviceMap::snapshot(const Snapshot& event, std::vector<Change>& out) {
  std::map<std::string, const KernelDevice*> wanted;
  for (const KernelDevice& device : event.devices)
    if (!device.name.empty()) wanted[device.name] = &device;
  std::vector<std::string> gone;
  for (const auto& [name, entry] : devices_)
    if (!wanted.contains(name)) gone.push_back(name);
  for (const std::string& name : gone) remove(name, out);
  for (const auto& [name, device] : wanted) {
    bool known = devices_.contains(name);
    std::size_t first = out.size();
    upsert(*device, event.media_changed, out);
    if (!event.forget_identities || !known) continue;
    bool changed = false, probing = false;
    for (std::size_t i = first; i < out.size(); ++i) {
      changed |= std::holds_alternative<DeviceChanged>(out[i]);
      probing |= std::holds_alternative<NeedsProbe>(out[i]);
    }
    Entry& entry = devices_.find(name)->second;
    if (probing || entry.device.kernel.size_bytes == 0) continue;  // already reset, or nothing to read
    bool visible = entry.device.identity.state != State::unprobed;
    unindex(name, entry.device);
    reset_identity(entry);
    if (visible && !changed) out.emplace_back(DeviceChanged{name});
    out.emplace_back(NeedsProbe{name, *entry.pending});
  }
}

void DeviceMap::index(const std::string& name, const Device& device) {
  for (std::size_t key = 0; key < key_count; ++key) {
    std::string value = key_value(device, key);
    if (value.empty()) continue;
    if (key == key_uuid) dirty_.insert(value);
    index_[key][value].insert(name);
  }
}

void DeviceMap::unindex(const std::string& name, const Device& device) {
  for (std::size_t key = 0; key < key_count; ++key) {
    std::string value = key_value(device, key);
    if (value.empty()) continue;
    if (key == key_uuid) dirty_.insert(value);
    auto it = index_[key].find(value);
    if (it == index_[key].end()) continue;
    it->second.erase(name);
    if (it->second.empty()) index_[key].erase(it);
  }
}

void DeviceMap::index_node(const std::string& name, const std::string& node) { nodes_.emplace(node, name); }

void DeviceMap::unindex_node(const std::string& name, const std::string& node) {
  auto [first, last] = nodes_.equal_range(node);
  for (auto it = first; it != last; ++it)
    if (it->second == name) {
      nodes_.erase(it);
      return;
    }
}

// ---- Filesystems ----

FilesystemView DeviceMap::view(const std::set<std::string>& names) const {
  ++views_built_;
  std::vector<Member> members;
  std::vector<const Device*> plain;  // same UUID, not btrfs members; by name
  for (const std::string& name : names) {
    const Device& device = devices_.find(name)->second.device;
    if (const probe::BtrfsMember* member = btrfs_member(device)) members.push_back({&device, member});
    else plain.push_back(&device);
  }

  FilesystemView view;
  if (members.empty()) {
    const probe::Tags& tags = plain.front()->identity.tags;
    view.uuid = probe::tag_value(tags, "UUID");
    view.type = probe::tag_value(tags, "TYPE");
    view.label = probe::tag_value(tags, "LABEL");
    for (const Device* device : plain) view.devices.push_back(device->kernel.node);
    if (plain.size() == 1) {
      view.present = 1;
      view.complete = true;
    } else {
      Conflict conflict;
      conflict.nodes = view.devices;
      std::sort(conflict.nodes.begin(), conflict.nodes.end());
      view.conflicts.push_back(std::move(conflict));
    }
    return view;
  }

  std::stable_sort(members.begin(), members.end(),
                   [](const Member& a, const Member& b) { return a.btrfs->devid < b.btrfs->devid; });
  // The newest superblock speaks for the filesystem; on a tie the larger
  // num_devices wins, so the map waits rather than mounts too early.
  const Member* newest = &members.front();
  for (const Member& member : members) {
    const probe::BtrfsMember& m = *member.btrfs;
    const probe::BtrfsMember& n = *newest->btrfs;
    if (m.generation > n.generation || (m.generation == n.generation && m.num_devices > n.num_devices))
      newest = &member;
  }
  view.uuid = newest->btrfs->fsid;
  view.type = probe::tag_value(newest->device->identity.tags, "TYPE");
  view.label = newest->btrfs->label;
  view.expected = newest->btrfs->num_devices;

  std::vector<std::size_t> group = conflict_groups(members);
  std::vector<bool> in_conflict(members.size(), false);
  for (std::size_t g = 0; g < members.size(); ++g) {
    Conflict conflict;
    std::set<std::string> subs_seen;
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (group[i] != g) continue;
      const probe::BtrfsMember& m = *members[i].btrfs;
      conflict.nodes.push_back(members[i].device->kernel.node);
      if (std::find(conflict.devids.begin(), conflict.devids.end(), m.devid) == conflict.devids.end())
        conflict.devids.push_back(m.devid);
      if (subs_seen.insert(fold_uuid(m.dev_uuid)).second) conflict.uuid_subs.push_back(m.dev_uuid);
    }
    if (conflict.nodes.size() < 2) continue;
    for (std::size_t i = 0; i < members.size(); ++i)
      if (group[i] == g) in_conflict[i] = true;
    std::sort(conflict.nodes.begin(), conflict.nodes.end());
    std::sort(conflict.devids.begin(), conflict.devids.end());
    std::sort(conflict.uuid_subs.begin(), conflict.uuid_subs.end());
    view.conflicts.push_back(std::move(conflict));
  }
  if (!plain.empty()) {
    Conflict conflict;  // non-btrfs devices claiming a btrfs fsid
    for (const Device* device : plain) conflict.nodes.push_back(device->kernel.node);
    std::sort(conflict.nodes.begin(), conflict.nodes.end());
    view.conflicts.push_back(std::move(conflict));
  }

  std::uint64_t highest_devid = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const std::string& node = members[i].device->kernel.node;
    view.devices.push_back(node);
    highest_devid = std::max(highest_devid, members[i].btrfs->devid);
    if (in_conflict[i]) continue;
    ++view.present;
    if (!view.mount_data.empty()) view.mount_data += ',';
    view.mount_data += "device=" + node;
  }
  for (const Device* device : plain) view.devices.push_back(device->kernel.node);

  if (view.expected <= max_listed_devids && highest_devid <= view.expected) {
    for (std::uint64_t devid = 1; devid <= view.expected; ++devid) {
      bool claimed = std::any_of(members.begin(), members.end(),
                                 [&](const Member& m) { return m.btrfs->devid == devid; });
      if (!claimed) view.missing_devids.push_back(devid);
    }
  }
  view.complete = view.conflicts.empty() && view.expected >= 1 && view.present == view.expected;
  return view;
}

void DeviceMap::report_filesystems(std::vector<Change>& out) {
  // Incomplete ones first, then complete ones, each by folded uuid (dirty_
  // is sorted so).
  std::vector<Change> completed;
  for (const std::string& folded : dirty_) {
    auto members = index_[key_uuid].find(folded);
    std::optional<FilesystemView> v;
    if (members != index_[key_uuid].end()) v = view(members->second);
    auto was = complete_.find(folded);
    if (v && v->complete) {
      if (was == complete_.end()) completed.emplace_back(FilesystemComplete{v->uuid});
      complete_[folded] = v->uuid;
    } else if (was != complete_.end()) {
      out.emplace_back(FilesystemIncomplete{was->second});
      complete_.erase(was);
    }
  }
  dirty_.clear();
  for (Change& change : completed) out.push_back(std::move(change));
}

// ---- Queries ----

const Device* DeviceMap::find(std::string_view name) const {
  auto it = devices_.find(name);
  return it == devices_.end() ? nullptr : &it->second.device;
}

const Device* DeviceMap::find_node(std::string_view node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : find(it->second);
}

std::vector<const Device*> DeviceMap::all() const {
  std::vector<const Device*> out;
  for (const auto& [name, entry] : devices_) out.push_back(&entry.device);
  return out;
}

std::optional<std::uint64_t> DeviceMap::pending_probe(std::string_view name) const {
  auto it = devices_.find(name);
  return it == devices_.end() ? std::nullopt : it->second.pending;
}

const std::set<std::string>* DeviceMap::lookup(Key key, std::string_view value) const {
  auto it = index_[key].find(value);
  return it == index_[key].end() ? nullptr : &it->second;
}

std::optional<FilesystemView> DeviceMap::filesystem(std::string_view uuid) const {
  const std::set<std::string>* names = lookup(key_uuid, fold_uuid(uuid));
  if (!names) return std::nullopt;
  return view(*names);
}

std::vector<FilesystemView> DeviceMap::filesystems() const {
  std::vector<FilesystemView> out;
  for (const auto& [folded, names] : index_[key_uuid]) out.push_back(view(names));
  return out;
}

Resolution DeviceMap::resolve(const Spec& spec) const {
  std::set<std::string> names;
  auto add = [&](Key key) {
    std::string value = folds_case(spec.kind) ? fold_uuid(spec.value) : spec.value;
    if (const std::set<std::string>* found = lookup(key, value)) names.insert(found->begin(), found->end());
  };
  switch (spec.kind) {
    case SpecKind::uuid: add(key_uuid); break;
    case SpecKind::uuid_sub: add(key_uuid_sub); break;
    case SpecKind::label: add(key_label); break;
    case SpecKind::partuuid: add(key_partuuid); break;
    case SpecKind::partlabel: add(key_partlabel); break;
    case SpecKind::bare_uuid:
      add(key_uuid);
      add(key_partuuid);
      break;
    case SpecKind::path: {
      auto [first, last] = nodes_.equal_range(spec.value);
      for (auto it = first; it != last; ++it) names.insert(it->second);
      break;
    }
  }

  Resolution resolution;
  for (const std::string& name : names) resolution.devices.push_back(&devices_.find(name)->second.device);
  if (resolution.devices.size() < 2) return resolution;

  // Several devices are one answer only when they are the distinct members
  // of one btrfs filesystem.
  const probe::BtrfsMember* first = btrfs_member(*resolution.devices.front());
  std::set<std::uint64_t> devids;
  std::set<std::string> subs;
  for (const Device* device : resolution.devices) {
    const probe::BtrfsMember* member = btrfs_member(*device);
    if (!member || fold_uuid(member->fsid) != fold_uuid(first->fsid) || !devids.insert(member->devid).second ||
        !subs.insert(fold_uuid(member->dev_uuid)).second) {
      resolution.ambiguous = true;
      return resolution;
    }
  }
  std::stable_sort(resolution.devices.begin(), resolution.devices.end(), [](const Device* a, const Device* b) {
    return btrfs_member(*a)->devid < btrfs_member(*b)->devid;
  });
  return resolution;
}

}  // namespace diskgate::devices
