#include "devices/builders.h"

namespace diskgate::devices::testing {

KernelDevice kdev(const std::string& name, unsigned major, unsigned minor, std::uint64_t size,
                  const std::string& parent) {
  KernelDevice d;
  d.name = name;
  d.node = "/dev/" + name;
  d.syspath = "/sys/devices/virtual/block/" + (parent.empty() ? name : parent + "/" + name);
  d.major = major;
  d.minor = minor;
  d.size_bytes = size;
  d.parent = parent;
  return d;
}

Identity filesystem(const std::string& type, const std::string& uuid, const std::string& label) {
  Identity id;
  id.state = Identity::State::identified;
  probe::Superblock sb;
  sb.type = type;
  if (!label.empty()) sb.tags.push_back({"LABEL", label});
  if (!uuid.empty()) sb.tags.push_back({"UUID", uuid});
  id.tags = sb.tags;
  id.tags.push_back({"TYPE", type});
  return id;
}

Identity btrfs(const std::string& fsid, const std::string& sub, std::uint64_t devid, std::uint64_t num_devices,
               std::uint64_t generation, const std::string& label) {
  Identity id;
  id.state = Identity::State::identified;
  probe::Superblock sb;
  sb.type = "btrfs";
  sb.tags = {{"LABEL", label}, {"UUID", fsid}, {"UUID_SUB", sub}, {"BLOCK_SIZE", "4096"}};
  id.btrfs = probe::BtrfsMember{fsid, sub, devid, num_devices, generation, GiB, label};
  id.tags = sb.tags;
  id.tags.push_back({"TYPE", "btrfs"});
  return id;
}

Identity unidentified() {
  Identity id;
  id.state = Identity::State::unidentified;
  return id;
}

Identity in_partition(Identity id, const std::string& partuuid, const std::string& partlabel) {
  id.state = Identity::State::identified;
  if (!partlabel.empty()) id.tags.push_back({"PARTLABEL", partlabel});
  id.tags.push_back({"PARTUUID", partuuid});
  return id;
}

}  // namespace diskgate::devices::testing
