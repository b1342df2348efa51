// The sysfs backend's enumeration on a fake sysfs tree: names the loop
// devices of block_devices_test.cc never have ('!' for '/', DEVNAME in a
// directory), removable disks, and entries that vanish or lie. Pure files:
// no root needed.
#include <stdlib.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "udev/backend.h"

namespace diskgate::udev {
namespace {

namespace fs = std::filesystem;

struct FakeSysfs {
  fs::path root;
  FakeSysfs() {
    char templ[] = "/tmp/diskgate-fake-sysfs.XXXXXX";
    REQUIRE(mkdtemp(templ));
    root = templ;
    fs::create_directories(root / "class/block");
  }
  ~FakeSysfs() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  static void write(const fs::path& file, const std::string& text) {
    std::ofstream(file) << text;
  }
  // A device directory under devices/ with its attributes, linked from
  // class/block as the kernel does.
  fs::path device(const std::string& dir, const std::string& uevent, std::uint64_t sectors,
                  const char* removable = nullptr) {
    fs::path path = root / "devices" / dir;
    fs::create_directories(path);
    write(path / "uevent", uevent);
    write(path / "size", std::to_string(sectors) + "\n");
    if (removable) write(path / "removable", std::string(removable) + "\n");
    fs::create_symlink(fs::relative(path, root / "class/block"), root / "class/block" / path.filename());
    return path;
  }
};

const devices::KernelDevice* find(const std::vector<devices::KernelDevice>& list, const std::string& name) {
  for (const auto& d : list)
    if (d.name == name) return &d;
  return nullptr;
}

}  // namespace

TEST_CASE("sysfs enumeration: names with '!', DEVNAME in a directory, partitions, removable", "[sysfs]") {
  FakeSysfs sysfs;
  fs::path disk = sysfs.device("pci0000:00/cciss0/block/cciss!c0d0",
                               "MAJOR=104\nMINOR=0\nDEVNAME=cciss/c0d0\nDEVTYPE=disk\n", 2048, "1");
  sysfs.device("pci0000:00/cciss0/block/cciss!c0d0/cciss!c0d0p1",
               "MAJOR=104\nMINOR=1\nDEVNAME=cciss/c0d0p1\nDEVTYPE=partition\nPARTN=1\n", 1024);
  sysfs.device("virtual/block/loop7", "MAJOR=7\nMINOR=7\nDEVNAME=loop7\nDEVTYPE=disk\nDISKSEQ=9\n", 0, "0");

  auto list = detail::enumerate_sysfs(sysfs.root);
  REQUIRE(list.size() == 3);
  const auto* whole = find(list, "cciss/c0d0");
  const auto* part = find(list, "cciss/c0d0p1");
  const auto* loop = find(list, "loop7");
  REQUIRE(whole);
  REQUIRE(part);
  REQUIRE(loop);
  CHECK(whole->node == "/dev/cciss/c0d0");
  CHECK(whole->syspath == disk.string());
  CHECK(whole->major == 104);
  CHECK(whole->minor == 0);
  CHECK(whole->size_bytes == 2048 * 512);
  CHECK(whole->parent.empty());
  CHECK(whole->removable);
  CHECK(part->node == "/dev/cciss/c0d0p1");
  CHECK(part->parent == "cciss/c0d0");
  CHECK(part->removable);  // the disk's attribute
  CHECK(part->size_bytes == 1024 * 512);
  CHECK(loop->node == "/dev/loop7");
  CHECK(loop->size_bytes == 0);
  CHECK_FALSE(loop->removable);
  // By syspath, a disk before its partition.
  CHECK(list[0].name == "cciss/c0d0");
  CHECK(list[1].name == "cciss/c0d0p1");
}

TEST_CASE("sysfs enumeration: vanished and lying entries are left out", "[sysfs]") {
  FakeSysfs sysfs;
  sysfs.device("virtual/block/loop1", "MAJOR=7\nMINOR=1\nDEVNAME=loop1\nDEVTYPE=disk\n", 8);
  // Removed between readdir and the read: a dangling link, or no uevent.
  fs::create_symlink("../../devices/virtual/block/gone", sysfs.root / "class/block/gone");
  fs::path nouevent = sysfs.device("virtual/block/nouevent", "MAJOR=7\nMINOR=2\n", 8);
  fs::remove(nouevent / "uevent");
  // No MAJOR or MINOR, or one that is not a number.
  sysfs.device("virtual/block/nominor", "MAJOR=7\nDEVNAME=nominor\n", 8);
  sysfs.device("virtual/block/baddev", "MAJOR=7\nMINOR=x\nDEVNAME=baddev\n", 8);
  sysfs.device("virtual/block/negdev", "MAJOR=-7\nMINOR=3\nDEVNAME=negdev\n", 8);
  sysfs.device("virtual/block/longdev", "MAJOR=7\nMINOR=3 \nDEVNAME=longdev\n", 8);
  // A DEVNAME that would leave /dev falls back to /dev/NAME.
  sysfs.device("virtual/block/loop4", "MAJOR=7\nMINOR=4\nDEVNAME=../etc/passwd\nDEVTYPE=disk\n", 8);
  // No DEVNAME at all: /dev/NAME too.
  sysfs.device("virtual/block/loop5", "MAJOR=7\nMINOR=5\nDEVTYPE=disk\n", 8);

  auto list = detail::enumerate_sysfs(sysfs.root);
  REQUIRE(list.size() == 3);
  CHECK(find(list, "loop1"));
  REQUIRE(find(list, "loop4"));
  CHECK(find(list, "loop4")->node == "/dev/loop4");
  REQUIRE(find(list, "loop5"));
  CHECK(find(list, "loop5")->node == "/dev/loop5");
}

TEST_CASE("sysfs enumeration: no class/block is an error naming it", "[sysfs]") {
  FakeSysfs sysfs;
  fs::remove(sysfs.root / "class/block");
  CHECK_THROWS_WITH(detail::enumerate_sysfs(sysfs.root), Catch::Contains("class/block"));
}

}  // namespace diskgate::udev
