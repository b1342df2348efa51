// The device map on synthetic events: no devices, no I/O.
#include "devices/device_map.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "devices/builders.h"

namespace diskgate::devices {
namespace {

using probe::Tag;
using State = Identity::State;
using namespace testing;
using Changes = std::vector<Change>;

std::optional<std::uint64_t> token_in(const Changes& changes, const std::string& name) {
  for (const Change& change : changes)
    if (auto* probe = std::get_if<NeedsProbe>(&change); probe && probe->name == name) return probe->token;
  return std::nullopt;
}

template <typename T>
std::size_t count_of(const Changes& changes) {
  return std::count_if(changes.begin(), changes.end(), [](const Change& c) { return std::holds_alternative<T>(c); });
}

// Upserts `device`, answers its NeedsProbe with `identity`; returns the
// changes of the Identified event.
Changes add(DeviceMap& map, const KernelDevice& device, const Identity& identity) {
  Changes upserted = map.apply(Upsert{device});
  auto token = token_in(upserted, device.name);
  REQUIRE(token);
  return map.apply(Identified{device.name, identity, *token});
}

std::vector<std::string> names(const std::vector<const Device*>& devices) {
  std::vector<std::string> out;
  for (const Device* d : devices) out.push_back(d->kernel.name);
  return out;
}

std::vector<std::string> names(const Resolution& resolution) { return names(resolution.devices); }

using Names = std::vector<std::string>;

Resolution resolve(const DeviceMap& map, std::string_view text) {
  auto spec = parse_spec(text);
  INFO("spec: " << std::string(text));
  REQUIRE(std::holds_alternative<Spec>(spec));
  return map.resolve(std::get<Spec>(spec));
}

const std::string ext_uuid = "0a1b2c3d-0000-4000-8000-00000000abcd";
const std::string fsid = "f5b1a2c3-1111-4222-8333-444455556666";
const std::string sub1 = "a0000000-0000-4000-8000-000000000001";
const std::string sub2 = "a0000000-0000-4000-8000-000000000002";
const std::string sub3 = "a0000000-0000-4000-8000-000000000003";

// ---- Add, identify, remove ----

TEST_CASE("a new device is added and asks to be probed") {
  DeviceMap map;
  Changes changes = map.apply(Upsert{kdev("sda1", 8, 1, GiB, "sda")});
  auto token = token_in(changes, "sda1");
  REQUIRE(token);
  CHECK(changes == Changes{DeviceAdded{"sda1"}, NeedsProbe{"sda1", *token}});
  const Device* device = map.find("sda1");
  REQUIRE(device);
  CHECK(device->kernel == kdev("sda1", 8, 1, GiB, "sda"));
  CHECK(device->identity.state == State::unprobed);
  CHECK(map.pending_probe("sda1") == token);
}

TEST_CASE("an identified device is indexed and its filesystem is complete") {
  DeviceMap map;
  Changes changes = add(map, kdev("sdb1", 8, 17), filesystem("ext4", ext_uuid, "backup"));
  CHECK(changes == Changes{DeviceChanged{"sdb1"}, FilesystemComplete{ext_uuid}});
  CHECK(map.find("sdb1")->identity.state == State::identified);
  CHECK_FALSE(map.pending_probe("sdb1"));
  CHECK(names(resolve(map, "UUID=" + ext_uuid)) == std::vector<std::string>{"sdb1"});

  auto fs = map.filesystem(ext_uuid);
  REQUIRE(fs);
  CHECK(fs->uuid == ext_uuid);
  CHECK(fs->type == "ext4");
  CHECK(fs->label == "backup");
  CHECK(fs->expected == 1);
  CHECK(fs->present == 1);
  CHECK(fs->devices == std::vector<std::string>{"/dev/sdb1"});
  CHECK(fs->missing_devids.empty());
  CHECK(fs->conflicts.empty());
  CHECK(fs->complete);
  CHECK(fs->mount_data.empty());
}

TEST_CASE("removing a device reports its node and makes its filesystem incomplete") {
  DeviceMap map;
  add(map, kdev("sdb1", 8, 17), filesystem("ext4", ext_uuid, "backup"));
  CHECK(map.apply(Removed{"sdb1"}) == Changes{DeviceRemoved{"sdb1", "/dev/sdb1"}, FilesystemIncomplete{ext_uuid}});
  CHECK(map.find("sdb1") == nullptr);
  CHECK(resolve(map, "UUID=" + ext_uuid).devices.empty());
  CHECK(resolve(map, "LABEL=backup").devices.empty());
  CHECK_FALSE(map.filesystem(ext_uuid));
  CHECK(map.filesystems().empty());
  CHECK(map.all().empty());
}

TEST_CASE("unidentified and unreadable results are kept but not indexed") {
  DeviceMap map;
  Identity unidentified;
  unidentified.state = State::unidentified;
  CHECK(add(map, kdev("sdc", 8, 32), unidentified) == Changes{DeviceChanged{"sdc"}});
  CHECK(map.find("sdc")->identity.state == State::unidentified);

  Identity unreadable;
  unreadable.state = State::unreadable;
  unreadable.error = "Input/output error";
  unreadable.tags = {{"UUID", ext_uuid}};  // ignored: only identified devices are indexed
  CHECK(add(map, kdev("sdd", 8, 48), unreadable) == Changes{DeviceChanged{"sdd"}});
  CHECK(map.find("sdd")->identity.error == "Input/output error");
  CHECK(resolve(map, "UUID=" + ext_uuid).devices.empty());
  CHECK(map.filesystems().empty());
}

TEST_CASE("all() lists devices sorted by kernel name") {
  DeviceMap map;
  for (const char* name : {"sdb", "loop0", "sda2", "sda1", "nvme0n1"}) map.apply(Upsert{kdev(name, 8, 0)});
  CHECK(names(map.all()) == std::vector<std::string>{"loop0", "nvme0n1", "sda1", "sda2", "sdb"});
}

// Which devices a change asks to probe again.
std::vector<std::string> probed(const Changes& changes) {
  std::vector<std::string> out;
  for (const Change& change : changes)
    if (auto* probe = std::get_if<NeedsProbe>(&change)) out.push_back(probe->name);
  return out;
}

// A disk's partitions take PARTUUID and PARTLABEL from its table, which a
// mkfs, wipefs or new table on the disk replaces (found by the storm test).
TEST_CASE("a disk's change or return probes its partitions again, a partition's write its disk, keeping identities") {
  DeviceMap map;
  add(map, kdev("loop1", 7, 1), unidentified());
  add(map, kdev("loop1p1", 259, 0, GiB, "loop1"), in_partition(filesystem("ext4", ext_uuid, ""), "1234abcd-01", ""));
  add(map, kdev("loop1p2", 259, 1, GiB, "loop1"), in_partition(unidentified(), "1234abcd-02", ""));
  add(map, kdev("loop10", 7, 10), unidentified());  // its name begins with loop1: not a partition of it
  add(map, kdev("loop10p1", 259, 2, GiB, "loop10"), in_partition(unidentified(), "5678abcd-01", ""));

  CHECK(probed(map.apply(Upsert{kdev("loop1", 7, 1)})).empty());  // a duplicate: nothing
  CHECK(probed(map.apply(Upsert{kdev("loop1", 7, 1), true})) == std::vector<std::string>{"loop1", "loop1p1", "loop1p2"});
  CHECK(map.find("loop1p1")->identity.state == State::identified);  // kept until the new result is in
  CHECK(resolve(map, "UUID=" + ext_uuid).devices.size() == 1);
  // A partition's own change (a write) probes itself and its disk, whose
  // whole-disk filesystem may span it, not its siblings; the disk keeps its
  // identity until the new result is in.
  map.apply(Upsert{kdev("loop1", 7, 1), true});
  map.apply(Identified{"loop1", filesystem("exfat", "1234-ABCD", "OLD"), *map.pending_probe("loop1")});
  CHECK(probed(map.apply(Upsert{kdev("loop1p1", 259, 0, GiB, "loop1"), true})) ==
        std::vector<std::string>{"loop1p1", "loop1"});
  CHECK(map.find("loop1")->identity.state == State::identified);
  CHECK(map.apply(Identified{"loop1", filesystem("exfat", "1234-ABCD", "NEW"), *map.pending_probe("loop1")}) ==
        Changes{DeviceChanged{"loop1"}});
  CHECK(resolve(map, "LABEL=NEW").devices.size() == 1);
  // Its kernel facts alone (no write) probe nothing.
  KernelDevice moved = kdev("loop1p1", 259, 0, GiB, "loop1");
  moved.removable = true;
  CHECK(probed(map.apply(Upsert{moved})).empty());

  map.apply(Removed{"loop1"});  // a synthetic remove: the partitions stay
  CHECK(probed(map.apply(Upsert{kdev("loop1", 7, 1)})) == std::vector<std::string>{"loop1", "loop1p1", "loop1p2"});
}

// ---- Kernel facts and media changes ----

TEST_CASE("a duplicate upsert changes nothing") {
  DeviceMap map;
  Changes first = map.apply(Upsert{kdev("sda", 8, 0)});
  CHECK(map.apply(Upsert{kdev("sda", 8, 0)}).empty());
  CHECK(map.pending_probe("sda") == token_in(first, "sda"));

  add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid, ""));
  CHECK(map.apply(Upsert{kdev("sdb", 8, 16)}).empty());
  CHECK(map.find("sdb")->identity.state == State::identified);
}

TEST_CASE("other kernel facts change without a re-probe") {
  DeviceMap map;
  add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid, ""));
  KernelDevice changed = kdev("sdb", 8, 16);
  changed.removable = true;
  changed.node = "/dev/sdb-renamed";
  CHECK(map.apply(Upsert{changed}) == Changes{DeviceChanged{"sdb"}});
  CHECK(map.find("sdb")->kernel == changed);
  CHECK(map.find("sdb")->identity.state == State::identified);
  CHECK(map.filesystem(ext_uuid)->devices == std::vector<std::string>{"/dev/sdb-renamed"});
}

TEST_CASE("a new size or a new device number resets the identity") {
  struct Case {
    const char* what;
    KernelDevice device;
    bool media_changed;
  };
  for (const Case& c : {Case{"size", kdev("sdb", 8, 16, 2 * GiB), false},
                        Case{"major", kdev("sdb", 65, 16), false},
                        Case{"minor", kdev("sdb", 8, 17), false}}) {
    INFO(c.what);
    DeviceMap map;
    add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid, "backup"));
    Changes changes = map.apply(Upsert{c.device, c.media_changed});
    auto token = token_in(changes, "sdb");
    REQUIRE(token);
    CHECK(changes == Changes{DeviceChanged{"sdb"}, NeedsProbe{"sdb", *token}, FilesystemIncomplete{ext_uuid}});
    CHECK(map.find("sdb")->identity.state == State::unprobed);
    CHECK(map.find("sdb")->identity.tags.empty());
    CHECK(resolve(map, "LABEL=backup").devices.empty());
    CHECK_FALSE(map.filesystem(ext_uuid));

    // The new medium carries another filesystem.
    const std::string other = "11111111-2222-4333-8444-555555555555";
    CHECK(map.apply(Identified{"sdb", filesystem("ext4", other, "new"), *token}) ==
          Changes{DeviceChanged{"sdb"}, FilesystemComplete{other}});
    CHECK(names(resolve(map, "LABEL=new")) == std::vector<std::string>{"sdb"});
  }
}

TEST_CASE("a device without a medium is not probed") {
  DeviceMap map;
  CHECK(map.apply(Upsert{kdev("loop0", 7, 0, 0)}) == Changes{DeviceAdded{"loop0"}});
  const Device* loop = map.find("loop0");
  CHECK(loop->identity.state == State::unreadable);
  CHECK(loop->identity.error == "no medium");
  CHECK_FALSE(map.pending_probe("loop0"));

  // Attaching a file gives it a size: now it is probed.
  Changes attached = map.apply(Upsert{kdev("loop0", 7, 0, GiB), true});
  auto token = token_in(attached, "loop0");
  REQUIRE(token);
  CHECK(attached == Changes{DeviceChanged{"loop0"}, NeedsProbe{"loop0", *token}});
}

TEST_CASE("ejecting the medium makes the device unreadable without a probe") {
  DeviceMap map;
  add(map, kdev("sr0", 11, 0), filesystem("vfat", "ABCD-1234", "STICK"));
  CHECK(map.apply(Upsert{kdev("sr0", 11, 0, 0), true}) ==
        Changes{DeviceChanged{"sr0"}, FilesystemIncomplete{"ABCD-1234"}});
  CHECK(map.find("sr0")->identity.error == "no medium");
  CHECK_FALSE(map.pending_probe("sr0"));
}

// ---- Stale and out-of-order events ----

TEST_CASE("the result of a probe started before a media change is ignored") {
  DeviceMap map;
  auto old_token = token_in(map.apply(Upsert{kdev("sdb", 8, 16)}), "sdb");
  auto new_token = token_in(map.apply(Upsert{kdev("sdb", 8, 16), true}), "sdb");
  REQUIRE(old_token);
  REQUIRE(new_token);
  CHECK(*old_token != *new_token);
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", ext_uuid, "old"), *old_token}).empty());
  CHECK(map.find("sdb")->identity.state == State::unprobed);
  CHECK(map.pending_probe("sdb") == new_token);
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", ext_uuid, "new"), *new_token}) ==
        Changes{DeviceChanged{"sdb"}, FilesystemComplete{ext_uuid}});
  CHECK(map.filesystem(ext_uuid)->label == "new");
}

TEST_CASE("the result of a probe of a device removed and added again is ignored") {
  DeviceMap map;
  auto first = token_in(map.apply(Upsert{kdev("sdb", 8, 16)}), "sdb");
  map.apply(Removed{"sdb"});
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", ext_uuid, ""), *first}).empty());
  auto second = token_in(map.apply(Upsert{kdev("sdb", 8, 16)}), "sdb");
  REQUIRE(second);
  CHECK(*second != *first);
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", ext_uuid, ""), *first}).empty());
  CHECK(map.find("sdb")->identity.state == State::unprobed);
  CHECK_FALSE(map.apply(Identified{"sdb", filesystem("ext4", ext_uuid, ""), *second}).empty());
  CHECK(map.find("sdb")->identity.state == State::identified);
}

TEST_CASE("a duplicate probe result is ignored") {
  DeviceMap map;
  auto token = token_in(map.apply(Upsert{kdev("sdb", 8, 16)}), "sdb");
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", ext_uuid, "a"), *token}).size() == 2);
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", ext_uuid, "b"), *token}).empty());
  CHECK(map.filesystem(ext_uuid)->label == "a");
}

TEST_CASE("a probe result that is no result is ignored") {
  DeviceMap map;
  auto token = token_in(map.apply(Upsert{kdev("sdb", 8, 16)}), "sdb");
  CHECK(map.apply(Identified{"sdb", Identity{}, *token}).empty());
  CHECK(map.pending_probe("sdb") == token);
}

TEST_CASE("events for unknown devices are ignored") {
  DeviceMap map;
  CHECK(map.apply(Identified{"sdz", filesystem("ext4", ext_uuid, ""), 1}).empty());
  CHECK(map.apply(Removed{"sdz"}).empty());
  CHECK(map.apply(Upsert{KernelDevice{}}).empty());  // no name
  CHECK(map.all().empty());
  // A removal that overtook the addition leaves the later addition intact.
  map.apply(Removed{"sdb"});
  CHECK(count_of<DeviceAdded>(map.apply(Upsert{kdev("sdb", 8, 16)})) == 1);
  CHECK(map.find("sdb"));
  CHECK(map.apply(Removed{"sdb"}).size() == 1);
  CHECK(map.apply(Removed{"sdb"}).empty());
}

// ---- Snapshot (re-enumeration after ENOBUFS) ----

TEST_CASE("a snapshot applies the difference") {
  DeviceMap map;
  const std::string gone_uuid = "22222222-2222-4222-8222-222222222222";
  map.apply(Upsert{kdev("sda", 8, 0, 8 * GiB)});
  add(map, kdev("sda1", 8, 1, GiB, "sda"), filesystem("ext4", ext_uuid, "keep"));
  add(map, kdev("sdb", 8, 16), filesystem("ext4", gone_uuid, "gone"));
  add(map, kdev("loop0", 7, 0), filesystem("vfat", "ABCD-1234", ""));
  auto sda_token = map.pending_probe("sda");

  Changes changes = map.apply(Snapshot{{
      kdev("sdc", 8, 32),
      kdev("loop0", 7, 0, 2 * GiB),  // re-attached to another file while events were lost
      kdev("sda1", 8, 1, GiB, "sda"),
      kdev("sda", 8, 0, 8 * GiB),
  }});
  auto loop_token = token_in(changes, "loop0");
  auto sdc_token = token_in(changes, "sdc");
  REQUIRE(loop_token);
  REQUIRE(sdc_token);
  CHECK(changes == Changes{DeviceRemoved{"sdb", "/dev/sdb"}, DeviceChanged{"loop0"},
                           NeedsProbe{"loop0", *loop_token}, DeviceAdded{"sdc"}, NeedsProbe{"sdc", *sdc_token},
                           FilesystemIncomplete{gone_uuid}, FilesystemIncomplete{"ABCD-1234"}});  // by folded uuid
  CHECK(names(map.all()) == std::vector<std::string>{"loop0", "sda", "sda1", "sdc"});
  // Unchanged devices keep their identity and their pending probe.
  CHECK(map.find("sda1")->identity.state == State::identified);
  CHECK(map.filesystem(ext_uuid)->complete);
  CHECK(map.pending_probe("sda") == sda_token);
}

TEST_CASE("an identical snapshot changes nothing, an empty one removes everything") {
  DeviceMap map;
  add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid, ""));
  map.apply(Upsert{kdev("sdc", 8, 32)});
  CHECK(map.apply(Snapshot{{kdev("sdc", 8, 32), kdev("sdb", 8, 16)}}).empty());
  CHECK(map.apply(Snapshot{}) == Changes{DeviceRemoved{"sdb", "/dev/sdb"}, DeviceRemoved{"sdc", "/dev/sdc"},
                                         FilesystemIncomplete{ext_uuid}});
  CHECK(map.all().empty());
}

TEST_CASE("in a snapshot the later entry of a name wins and nameless entries are skipped") {
  DeviceMap map;
  map.apply(Snapshot{{kdev("sdb", 8, 16, GiB), KernelDevice{}, kdev("sdb", 8, 16, 3 * GiB)}});
  CHECK(names(map.all()) == std::vector<std::string>{"sdb"});
  CHECK(map.find("sdb")->kernel.size_bytes == 3 * GiB);
}

TEST_CASE("a snapshot does not lose a filesystem that stays complete") {
  DeviceMap map;
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub1, 1, 2));
  add(map, kdev("sdc", 8, 32), btrfs(fsid, sub2, 2, 2));
  REQUIRE(map.filesystem(fsid)->complete);
  CHECK(map.apply(Snapshot{{kdev("sdb", 8, 16), kdev("sdc", 8, 32), kdev("sdd", 8, 48)}}).size() == 2);
  CHECK(map.filesystem(fsid)->complete);
}

TEST_CASE("a snapshot after lost events forgets identities: a disk swapped unseen is not the old member") {
  DeviceMap map;
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub1, 1, 2));
  add(map, kdev("sdc", 8, 32), btrfs(fsid, sub2, 2, 2));
  map.apply(Upsert{kdev("sdd", 8, 48, 0)});  // no medium: nothing to probe
  REQUIRE(map.filesystem(fsid)->complete);

  // sdc was swapped for another disk of the same size at the same number.
  Changes changes =
      map.apply(Snapshot{{kdev("sdb", 8, 16), kdev("sdc", 8, 32), kdev("sdd", 8, 48, 0)}, true});
  auto b = token_in(changes, "sdb");
  auto c = token_in(changes, "sdc");
  REQUIRE(b);
  REQUIRE(c);
  CHECK(changes == Changes{DeviceChanged{"sdb"}, NeedsProbe{"sdb", *b}, DeviceChanged{"sdc"}, NeedsProbe{"sdc", *c},
                           FilesystemIncomplete{fsid}});
  CHECK(map.find("sdc")->identity.state == State::unprobed);
  CHECK(map.resolve(std::get<Spec>(parse_spec("UUID=" + fsid))).devices.empty());
  // The probe results replace the old identities; only the real member counts.
  map.apply(Identified{"sdb", btrfs(fsid, sub1, 1, 2), *b});
  map.apply(Identified{"sdc", filesystem("ext4", ext_uuid), *c});
  CHECK_FALSE(map.filesystem(fsid)->complete);
  CHECK(map.filesystem(fsid)->present == 1);
  CHECK(map.filesystem(ext_uuid)->complete);
}

TEST_CASE("a snapshot after lost events probes a device with new facts once") {
  DeviceMap map;
  add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid));
  Changes changes = map.apply(Snapshot{{kdev("sdb", 8, 16, 2 * GiB)}, true});
  CHECK(count_of<NeedsProbe>(changes) == 1);
  CHECK(count_of<DeviceChanged>(changes) == 1);
}

// ---- btrfs assembly ----

struct Member {
  KernelDevice device;
  Identity identity;
};

// Runs every interleaving of the members' Upsert and Identified events (each
// device's Upsert before its Identified) and calls check(map, changes per
// event, order) on each.
template <typename Check>
void every_arrival_order(const std::vector<Member>& members, Check check) {
  std::vector<std::size_t> sequence;
  for (std::size_t i = 0; i < members.size(); ++i) sequence.insert(sequence.end(), 2, i);
  std::size_t orders = 0;
  do {
    DeviceMap map;
    std::vector<Changes> all;
    std::vector<bool> upserted(members.size(), false);
    std::map<std::size_t, std::uint64_t> tokens;
    std::string order;
    for (std::size_t i : sequence) {
      const Member& m = members[i];
      if (!upserted[i]) {
        upserted[i] = true;
        all.push_back(map.apply(Upsert{m.device}));
        auto token = token_in(all.back(), m.device.name);
        REQUIRE(token);
        tokens[i] = *token;
        order += "U" + m.device.name + " ";
      } else {
        all.push_back(map.apply(Identified{m.device.name, m.identity, tokens[i]}));
        order += "I" + m.device.name + " ";
      }
    }
    INFO("arrival order: " << order);
    check(map, all, sequence);
    ++orders;
  } while (std::next_permutation(sequence.begin(), sequence.end()));
  // (2n)! / 2^n interleavings.
  std::size_t expected = 1;
  for (std::size_t k = 2; k <= 2 * members.size(); ++k) expected *= k;
  expected >>= members.size();
  CHECK(orders == expected);
}

// The filesystem becomes complete exactly when the last member is identified.
void check_assembles(const std::vector<Member>& members, const std::vector<std::string>& devid_order,
                     const std::string& mount_data) {
  every_arrival_order(members, [&](const DeviceMap& map, const std::vector<Changes>& all,
                                   const std::vector<std::size_t>&) {
    for (std::size_t e = 0; e + 1 < all.size(); ++e) {
      CHECK(count_of<FilesystemComplete>(all[e]) == 0);
      CHECK(count_of<FilesystemIncomplete>(all[e]) == 0);
    }
    CHECK(all.back().back() == Change{FilesystemComplete{fsid}});
    auto fs = map.filesystem(fsid);
    REQUIRE(fs);
    CHECK(fs->complete);
    CHECK(fs->type == "btrfs");
    CHECK(fs->label == "pool");
    CHECK(fs->expected == members.size());
    CHECK(fs->present == members.size());
    CHECK(fs->devices == devid_order);
    CHECK(fs->missing_devids.empty());
    CHECK(fs->conflicts.empty());
    CHECK(fs->mount_data == mount_data);
    Resolution r = map.resolve(Spec{SpecKind::uuid, fsid});
    CHECK_FALSE(r.ambiguous);
    std::vector<std::string> nodes;
    for (const Device* d : r.devices) nodes.push_back(d->kernel.node);
    CHECK(nodes == devid_order);
  });
}

TEST_CASE("a 2-device btrfs filesystem assembles in every arrival order") {
  // Devid order differs from name order on purpose.
  check_assembles({{kdev("sdc", 8, 32), btrfs(fsid, sub1, 1, 2)}, {kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2)}},
                  {"/dev/sdc", "/dev/sdb"}, "device=/dev/sdc,device=/dev/sdb");
}

TEST_CASE("a 3-device btrfs filesystem assembles in every arrival order") {
  check_assembles({{kdev("sdb", 8, 16), btrfs(fsid, sub3, 3, 3)},
                   {kdev("sdc", 8, 32), btrfs(fsid, sub1, 1, 3)},
                   {kdev("sda", 8, 0), btrfs(fsid, sub2, 2, 3)}},
                  {"/dev/sdc", "/dev/sda", "/dev/sdb"}, "device=/dev/sdc,device=/dev/sda,device=/dev/sdb");
}

TEST_CASE("an incomplete btrfs filesystem lists what is missing") {
  DeviceMap map;
  CHECK(count_of<FilesystemComplete>(add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 3))) == 0);
  auto fs = map.filesystem(fsid);
  REQUIRE(fs);
  CHECK_FALSE(fs->complete);
  CHECK(fs->expected == 3);
  CHECK(fs->present == 1);
  CHECK(fs->missing_devids == std::vector<std::uint64_t>{1, 3});
  CHECK(fs->mount_data == "device=/dev/sdb");
}

TEST_CASE("removing a btrfs member makes the filesystem incomplete, re-adding completes it") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 3));
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 3));
  CHECK(add(map, kdev("sdc", 8, 32), btrfs(fsid, sub3, 3, 3)).back() == Change{FilesystemComplete{fsid}});

  CHECK(map.apply(Removed{"sdb"}) == Changes{DeviceRemoved{"sdb", "/dev/sdb"}, FilesystemIncomplete{fsid}});
  auto fs = map.filesystem(fsid);
  REQUIRE(fs);
  CHECK_FALSE(fs->complete);
  CHECK(fs->present == 2);
  CHECK(fs->missing_devids == std::vector<std::uint64_t>{2});
  CHECK(fs->mount_data == "device=/dev/sda,device=/dev/sdc");

  CHECK(add(map, kdev("sdd", 8, 48), btrfs(fsid, sub2, 2, 3)).back() == Change{FilesystemComplete{fsid}});
  CHECK(map.filesystem(fsid)->mount_data == "device=/dev/sda,device=/dev/sdd,device=/dev/sdc");
}

TEST_CASE("a media change re-probes but keeps the old identity until the result") {
  DeviceMap map;
  add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid, "backup"));
  Changes changes = map.apply(Upsert{kdev("sdb", 8, 16), true});
  auto token = token_in(changes, "sdb");
  REQUIRE(token);
  CHECK(changes == Changes{NeedsProbe{"sdb", *token}});
  CHECK(map.find("sdb")->identity.state == State::identified);
  CHECK(names(resolve(map, "LABEL=backup")) == std::vector<std::string>{"sdb"});

  // The new medium carries another filesystem: now it changes.
  const std::string other = "11111111-2222-4333-8444-555555555555";
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", other, "new"), *token}) ==
        Changes{DeviceChanged{"sdb"}, FilesystemIncomplete{ext_uuid}, FilesystemComplete{other}});
  CHECK(names(resolve(map, "LABEL=new")) == std::vector<std::string>{"sdb"});
  CHECK(resolve(map, "LABEL=backup").devices.empty());
}

TEST_CASE("a second media change while a probe is in flight drops the older result") {
  DeviceMap map;
  add(map, kdev("sdb", 8, 16), filesystem("ext4", ext_uuid, "backup"));
  auto first = token_in(map.apply(Upsert{kdev("sdb", 8, 16), true}), "sdb");
  auto second = token_in(map.apply(Upsert{kdev("sdb", 8, 16), true}), "sdb");
  REQUIRE(first);
  REQUIRE(second);
  CHECK(*first != *second);
  const std::string other = "11111111-2222-4333-8444-555555555555";
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", other, "stale"), *first}).empty());
  CHECK(names(resolve(map, "LABEL=backup")) == std::vector<std::string>{"sdb"});
  CHECK(map.apply(Identified{"sdb", filesystem("ext4", other, "new"), *second}).front() == Change{DeviceChanged{"sdb"}});
}

TEST_CASE("a media change on a btrfs member keeps the filesystem complete when the member is unchanged") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2));
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
  Changes changes = map.apply(Upsert{kdev("sdb", 8, 16), true});
  auto token = token_in(changes, "sdb");
  REQUIRE(token);
  CHECK(changes == Changes{NeedsProbe{"sdb", *token}});
  CHECK(map.filesystem(fsid)->complete);
  CHECK(map.apply(Identified{"sdb", btrfs(fsid, sub2, 2, 2), *token}).empty());
  CHECK(map.filesystem(fsid)->complete);
}

TEST_CASE("a media change that wipes a btrfs member makes the filesystem incomplete") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2));
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
  auto token = token_in(map.apply(Upsert{kdev("sdb", 8, 16), true}), "sdb");
  REQUIRE(token);
  Identity nothing;
  nothing.state = State::unidentified;
  CHECK(map.apply(Identified{"sdb", nothing, *token}) == Changes{DeviceChanged{"sdb"}, FilesystemIncomplete{fsid}});
}

TEST_CASE("a dd copy of a btrfs member (same UUID_SUB) is a conflict, never a second member") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2));
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
  REQUIRE(map.filesystem(fsid)->complete);

  CHECK(add(map, kdev("sdc", 8, 32), btrfs(fsid, sub2, 2, 2)) ==
        Changes{DeviceChanged{"sdc"}, FilesystemIncomplete{fsid}});
  auto fs = map.filesystem(fsid);
  REQUIRE(fs);
  CHECK_FALSE(fs->complete);
  CHECK(fs->present == 1);  // neither copy counts
  CHECK(fs->devices == std::vector<std::string>{"/dev/sda", "/dev/sdb", "/dev/sdc"});
  CHECK(fs->conflicts == std::vector<Conflict>{Conflict{{2}, {sub2}, {"/dev/sdb", "/dev/sdc"}}});
  CHECK(fs->mount_data == "device=/dev/sda");  // never names an ambiguous member
  CHECK(fs->missing_devids.empty());           // devid 2 is claimed, by two

  Resolution by_sub = resolve(map, "UUID_SUB=" + sub2);
  CHECK(by_sub.ambiguous);
  CHECK(names(by_sub) == std::vector<std::string>{"sdb", "sdc"});
  CHECK(resolve(map, "UUID=" + fsid).ambiguous);

  // Taking the copy away resolves the conflict.
  CHECK(map.apply(Removed{"sdc"}) == Changes{DeviceRemoved{"sdc", "/dev/sdc"}, FilesystemComplete{fsid}});
  CHECK(map.filesystem(fsid)->conflicts.empty());
}

TEST_CASE("with a dd copy present the filesystem is never complete, in any arrival order") {
  every_arrival_order({{kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2)},
                       {kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2)},
                       {kdev("sdc", 8, 32), btrfs(fsid, sub2, 2, 2)}},
                      [](const DeviceMap& map, const std::vector<Changes>& all, const std::vector<std::size_t>& seq) {
                        // The copy cannot be told from the original until both are
                        // there: complete flashes once iff devid 1 and one of the two
                        // copies are identified before the other copy.
                        std::size_t completes = 0, incompletes = 0;
                        for (const Changes& c : all) {
                          completes += count_of<FilesystemComplete>(c);
                          incompletes += count_of<FilesystemIncomplete>(c);
                        }
                        CHECK(completes == incompletes);
                        // Position of each device's Identified (its last event).
                        auto identified_at = [&](std::size_t device) {
                          return seq.rend() - std::find(seq.rbegin(), seq.rend(), device);
                        };
                        bool both_copies_first = identified_at(0) > std::max(identified_at(1), identified_at(2));
                        CHECK(completes == (both_copies_first ? 0u : 1u));
                        auto fs = map.filesystem(fsid);
                        REQUIRE(fs);
                        CHECK_FALSE(fs->complete);
                        CHECK(fs->conflicts.size() == 1);
                      });
}

TEST_CASE("two devices claiming one devid with different UUID_SUBs are a conflict") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2));
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
  CHECK(count_of<FilesystemIncomplete>(add(map, kdev("sdc", 8, 32), btrfs(fsid, sub3, 2, 2))) == 1);
  auto fs = map.filesystem(fsid);
  CHECK(fs->conflicts == std::vector<Conflict>{Conflict{{2}, {sub2, sub3}, {"/dev/sdb", "/dev/sdc"}}});
  CHECK_FALSE(fs->complete);
  Resolution r = resolve(map, "UUID=" + fsid);
  CHECK(r.ambiguous);
  CHECK(names(r) == Names{"sda", "sdb", "sdc"});
}

TEST_CASE("UUID_SUBs conflict regardless of case") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2));
  std::string upper = sub1;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](char c) { return std::toupper(c); });
  add(map, kdev("sdb", 8, 16), btrfs(fsid, upper, 2, 2));  // same member, claims another devid
  auto fs = map.filesystem(fsid);
  REQUIRE(fs->conflicts.size() == 1);
  CHECK(fs->conflicts[0].devids == std::vector<std::uint64_t>{1, 2});
  CHECK_FALSE(fs->complete);
}

TEST_CASE("num_devices comes from the member with the highest generation") {
  SECTION("the newer member says fewer devices") {
    DeviceMap map;
    add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 3, 5));
    CHECK(add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2, 9)).back() == Change{FilesystemComplete{fsid}});
    CHECK(map.filesystem(fsid)->expected == 2);
  }
  SECTION("the newer member says more devices") {
    DeviceMap map;
    add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2, 5));
    CHECK(count_of<FilesystemComplete>(add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 3, 9))) == 0);
    auto fs = map.filesystem(fsid);
    CHECK(fs->expected == 3);
    CHECK(fs->missing_devids == std::vector<std::uint64_t>{3});
  }
  SECTION("a newer member arriving later changes the verdict") {
    DeviceMap map;
    add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 1, 5));
    CHECK(map.filesystem(fsid)->complete);
    CHECK(add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 3, 9)).back() == Change{FilesystemIncomplete{fsid}});
  }
  SECTION("on a tie the larger value is used") {
    for (bool larger_first : {true, false}) {
      INFO("larger value on devid " << (larger_first ? 1 : 2));
      DeviceMap map;
      add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, larger_first ? 3 : 2, 9));
      add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, larger_first ? 2 : 3, 9));
      CHECK(map.filesystem(fsid)->expected == 3);
      CHECK_FALSE(map.filesystem(fsid)->complete);
    }
  }
  SECTION("the label is the newest member's too") {
    DeviceMap map;
    add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2, 5, "old"));
    add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2, 9, "new"));
    CHECK(map.filesystem(fsid)->label == "new");
  }
  SECTION("more devids than expected is not complete") {
    // A stale ex-member (removed while offline) next to the current two.
    DeviceMap map;
    add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2, 9));
    add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2, 9));
    CHECK(add(map, kdev("sdc", 8, 32), btrfs(fsid, sub3, 3, 3, 4)).back() == Change{FilesystemIncomplete{fsid}});
    auto fs = map.filesystem(fsid);
    CHECK(fs->expected == 2);
    CHECK(fs->present == 3);
    CHECK_FALSE(fs->complete);
    CHECK(fs->missing_devids.empty());
  }
}

TEST_CASE("sparse devids assemble; missing ids are then unknown") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2));
  auto fs = map.filesystem(fsid);
  CHECK(fs->missing_devids == std::vector<std::uint64_t>{2});
  CHECK(add(map, kdev("sdb", 8, 16), btrfs(fsid, sub3, 3, 2)).back() == Change{FilesystemComplete{fsid}});
  fs = map.filesystem(fsid);
  CHECK(fs->mount_data == "device=/dev/sda,device=/dev/sdb");
  CHECK(fs->missing_devids.empty());
}

TEST_CASE("an absurd num_devices neither completes nor lists a huge range") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, ~std::uint64_t{0}));
  auto fs = map.filesystem(fsid);
  CHECK_FALSE(fs->complete);
  CHECK(fs->missing_devids.empty());
  DeviceMap zero;
  add(zero, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 0));
  CHECK_FALSE(zero.filesystem(fsid)->complete);
}

TEST_CASE("a device that is not a btrfs member but has the fsid is a conflict") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 1));
  REQUIRE(map.filesystem(fsid)->complete);
  // Ambivalent (two superblocks, as identify_device gives it: no btrfs
  // membership is taken from it), but its tags still carry the fsid.
  Identity ambivalent = btrfs(fsid, sub2, 2, 2);
  ambivalent.btrfs.reset();
  ambivalent.error = "ambivalent: several filesystems on the device";
  CHECK(add(map, kdev("sdb", 8, 16), ambivalent).back() == Change{FilesystemIncomplete{fsid}});
  auto fs = map.filesystem(fsid);
  CHECK(fs->conflicts == std::vector<Conflict>{Conflict{{}, {}, {"/dev/sdb"}}});
  CHECK(fs->devices == std::vector<std::string>{"/dev/sda", "/dev/sdb"});
  CHECK(fs->mount_data == "device=/dev/sda");
  CHECK(resolve(map, "UUID=" + fsid).ambiguous);
}

TEST_CASE("two non-btrfs devices with one UUID are a conflict") {
  DeviceMap map;
  CHECK(add(map, kdev("sdb", 8, 16), filesystem("vfat", "ABCD-1234", "A")).back() ==
        Change{FilesystemComplete{"ABCD-1234"}});
  CHECK(add(map, kdev("sdc", 8, 32), filesystem("vfat", "ABCD-1234", "B")).back() ==
        Change{FilesystemIncomplete{"ABCD-1234"}});
  auto fs = map.filesystem("abcd-1234");
  REQUIRE(fs);
  CHECK_FALSE(fs->complete);
  CHECK(fs->present == 0);
  CHECK(fs->expected == 1);
  CHECK(fs->conflicts == std::vector<Conflict>{Conflict{{}, {}, {"/dev/sdb", "/dev/sdc"}}});
}

TEST_CASE("filesystems() lists each filesystem once") {
  DeviceMap map;
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2));
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
  add(map, kdev("sdc", 8, 32), filesystem("ext4", ext_uuid, ""));
  auto all = map.filesystems();
  REQUIRE(all.size() == 2);
  CHECK(all[0].uuid == ext_uuid);  // by folded uuid
  CHECK(all[1].uuid == fsid);
  CHECK(all[1].devices.size() == 2);
}

// ---- resolve ----

struct Layout {
  DeviceMap map;
  const std::string gpt_efi = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
  const std::string gpt_data = "6a898cc3-1dd2-11b2-99a6-080020736631";
  Layout() {
    map.apply(Upsert{kdev("sda", 8, 0, 8 * GiB)});  // never probed: reachable by path only
    add(map, kdev("sda1", 8, 1, GiB, "sda"), in_partition(filesystem("vfat", "ABCD-1234", "EFI"), gpt_efi, "EFI system"));
    add(map, kdev("sda2", 8, 2, GiB, "sda"), in_partition(filesystem("ext4", ext_uuid, "backup"), gpt_data, "data"));
    add(map, kdev("sdb1", 8, 17, GiB, "sdb"), in_partition(filesystem("exfat", "5E7F-0A1B", "Stick"), "1234abcd-01", ""));
    add(map, kdev("sdc", 8, 32), btrfs(fsid, sub1, 1, 2));
    add(map, kdev("sdd", 8, 48), btrfs(fsid, sub2, 2, 2));
  }
};

std::vector<std::string> found(const DeviceMap& map, std::string_view spec) {
  Resolution r = resolve(map, spec);
  CHECK_FALSE(r.ambiguous);
  return names(r);
}

TEST_CASE("resolve by UUID ignores case; a btrfs UUID gives its members by devid") {
  Layout l;
  CHECK(found(l.map, "UUID=ABCD-1234") == Names{"sda1"});
  CHECK(found(l.map, "UUID=abcd-1234") == Names{"sda1"});
  CHECK(found(l.map, "UUID=\"abcd-1234\"") == Names{"sda1"});
  CHECK(found(l.map, "UUID='0A1B2C3D-0000-4000-8000-00000000ABCD'") == Names{"sda2"});
  CHECK(found(l.map, "UUID=" + fsid) == Names{"sdc", "sdd"});
  CHECK(found(l.map, "UUID=ABCD-1235").empty());
}

TEST_CASE("resolve by UUID_SUB finds one btrfs member") {
  Layout l;
  CHECK(found(l.map, "UUID_SUB=" + sub2) == Names{"sdd"});
  CHECK(found(l.map, "UUID_SUB=A0000000-0000-4000-8000-000000000001") == Names{"sdc"});
}

TEST_CASE("resolve by LABEL and PARTLABEL is exact") {
  Layout l;
  CHECK(found(l.map, "LABEL=EFI") == Names{"sda1"});
  CHECK(found(l.map, "LABEL=efi").empty());
  CHECK(found(l.map, "LABEL='backup'") == Names{"sda2"});
  CHECK(found(l.map, "LABEL=pool") == Names{"sdc", "sdd"});  // one btrfs filesystem: not ambiguous
  CHECK(found(l.map, "PARTLABEL=\"EFI system\"") == Names{"sda1"});
  CHECK(found(l.map, "PARTLABEL='efi system'").empty());
  CHECK(found(l.map, "PARTLABEL=data") == Names{"sda2"});
}

TEST_CASE("resolve by PARTUUID ignores case") {
  Layout l;
  CHECK(found(l.map, "PARTUUID=" + l.gpt_data) == Names{"sda2"});
  CHECK(found(l.map, "PARTUUID=6A898CC3-1DD2-11B2-99A6-080020736631") == Names{"sda2"});
  CHECK(found(l.map, "PARTUUID=1234ABCD-01") == Names{"sdb1"});
  CHECK(found(l.map, "PARTUUID=" + ext_uuid).empty());  // a filesystem UUID is not a PARTUUID
}

TEST_CASE("a bare UUID matches a UUID or a PARTUUID") {
  Layout l;
  CHECK(found(l.map, "abcd-1234") == Names{"sda1"});         // FAT serial
  CHECK(found(l.map, "5e7f-0a1b") == Names{"sdb1"});         // exFAT serial
  CHECK(found(l.map, ext_uuid) == Names{"sda2"});            // ext4 UUID
  CHECK(found(l.map, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") == Names{"sda1"});  // GPT PARTUUID
  CHECK(found(l.map, "1234abcd-01") == Names{"sdb1"});       // MBR PARTUUID
  CHECK(found(l.map, fsid) == Names{"sdc", "sdd"});          // btrfs: members by devid
  CHECK(found(l.map, "1234abcd-02").empty());
}

TEST_CASE("resolve by path matches the node, probed or not") {
  Layout l;
  CHECK(found(l.map, "/dev/sda") == Names{"sda"});
  CHECK(found(l.map, "//dev/./sda2") == Names{"sda2"});
  CHECK(found(l.map, "/dev/sde").empty());
}

TEST_CASE("several matches that are not one btrfs filesystem are ambiguous") {
  SECTION("a dd copy of a single-device filesystem") {
    Layout l;
    add(l.map, kdev("sde", 8, 64), filesystem("ext4", ext_uuid, "backup"));
    Resolution r = resolve(l.map, "UUID=" + ext_uuid);
    CHECK(r.ambiguous);
    CHECK(names(r) == Names{"sda2", "sde"});
    CHECK(resolve(l.map, "LABEL=backup").ambiguous);
  }
  SECTION("two filesystems with one label") {
    Layout l;
    add(l.map, kdev("sde", 8, 64), filesystem("vfat", "1111-2222", "EFI"));
    Resolution r = resolve(l.map, "LABEL=EFI");
    CHECK(r.ambiguous);
    CHECK(names(r) == Names{"sda1", "sde"});
  }
  SECTION("two btrfs filesystems with one label") {
    Layout l;
    add(l.map, kdev("sde", 8, 64), btrfs("99999999-1111-4222-8333-444455556666", sub3, 1, 1));
    Resolution r = resolve(l.map, "LABEL=pool");
    CHECK(r.ambiguous);
    CHECK(names(r) == Names{"sdc", "sdd", "sde"});
  }
  SECTION("a bare value that is a UUID on one device and a PARTUUID on another") {
    Layout l;
    add(l.map, kdev("sde1", 8, 65, GiB, "sde"), in_partition(Identity{}, ext_uuid, "other"));
    Resolution r = resolve(l.map, ext_uuid);
    CHECK(r.ambiguous);
    CHECK(names(r) == Names{"sda2", "sde1"});
    CHECK_FALSE(resolve(l.map, "UUID=" + ext_uuid).ambiguous);
    CHECK_FALSE(resolve(l.map, "PARTUUID=" + ext_uuid).ambiguous);
  }
  SECTION("two partitions with one PARTLABEL") {
    Layout l;
    add(l.map, kdev("sde1", 8, 65, GiB, "sde"), in_partition(Identity{}, "11111111-0000-4000-8000-000000000000", "data"));
    CHECK(resolve(l.map, "PARTLABEL=data").ambiguous);
  }
}

TEST_CASE("a partition without a filesystem is found by its partition tags but forms no filesystem") {
  DeviceMap map;
  add(map, kdev("sde1", 8, 65, GiB, "sde"), in_partition(Identity{}, "1234abcd-01", ""));
  CHECK(found(map, "PARTUUID=1234abcd-01") == Names{"sde1"});
  CHECK(map.filesystems().empty());
}

TEST_CASE("changes print readably") {
  std::ostringstream out;
  out << Change{NeedsProbe{"sda", 7}} << ' ' << Change{DeviceRemoved{"sda", "/dev/sda"}};
  CHECK(out.str() == "NeedsProbe{sda, 7} DeviceRemoved{sda, /dev/sda}");
}

// ---- Cost per event ----

// A map of `n` identified vfat devices and one two-member btrfs.
DeviceMap map_of(int n) {
  DeviceMap map;
  for (int i = 0; i < n; ++i)
    add(map, kdev("loop" + std::to_string(i), 7, static_cast<unsigned>(i)),
        filesystem("vfat", fmt::format("BE00-{:04X}", i)));
  add(map, kdev("sda", 8, 0), btrfs(fsid, sub1, 1, 2));
  add(map, kdev("sdb", 8, 16), btrfs(fsid, sub2, 2, 2));
  return map;
}

// The views an event (or query) computes: the filesystem it touches only.
template <typename Act>
std::uint64_t views_for(DeviceMap& map, Act act) {
  std::uint64_t before = map.views_built();
  act(map);
  return map.views_built() - before;
}

TEST_CASE("an event computes the views of the filesystems it touches, however many devices the map holds") {
  for (int n : {64, 4096}) {
    INFO("devices: " << n);
    DeviceMap map = map_of(n);
    // A new device, probed: its own filesystem's view, once per apply().
    CHECK(views_for(map, [](DeviceMap& m) { add(m, kdev("sdc", 8, 32), filesystem("ext4", ext_uuid)); }) == 1);
    // A change that finds the same contents: nothing to recompute.
    CHECK(views_for(map, [](DeviceMap& m) {
            Changes changes = m.apply(Upsert{kdev("sdc", 8, 32), true});
            m.apply(Identified{"sdc", filesystem("ext4", ext_uuid), *token_in(changes, "sdc")});
          }) == 0);
    // A btrfs member leaves: that filesystem only.
    CHECK(views_for(map, [](DeviceMap& m) { m.apply(Removed{"sdb"}); }) == 1);
    // Resolving by UUID, label or node computes no view.
    CHECK(views_for(map, [](DeviceMap& m) {
            CHECK(names(resolve(m, "UUID=BE00-0010")) == Names{"loop16"});
            CHECK(names(resolve(m, "/dev/loop17")) == Names{"loop17"});
            CHECK(m.find_node("/dev/sdc")->kernel.name == "sdc");
          }) == 0);
  }
}

TEST_CASE("the node index follows a device renamed by the kernel, and removal") {
  DeviceMap map;
  add(map, kdev("sdc", 8, 32), filesystem("ext4", ext_uuid));
  KernelDevice moved = kdev("sdc", 8, 32);
  moved.node = "/dev/backup";
  map.apply(Upsert{moved});
  CHECK(map.find_node("/dev/sdc") == nullptr);
  REQUIRE(map.find_node("/dev/backup") != nullptr);
  CHECK(names(resolve(map, "/dev/backup")) == Names{"sdc"});
  map.apply(Removed{"sdc"});
  CHECK(map.find_node("/dev/backup") == nullptr);
  CHECK(resolve(map, "/dev/backup").devices.empty());
}

}  // namespace
}  // namespace diskgate::devices
