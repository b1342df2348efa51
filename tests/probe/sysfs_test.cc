// partition_location against a fake sysfs tree laid out like the kernel's
// (dev/block/M:m symlinks into devices/.../block/<disk>/<partition>), and once
// against the real /sys with a GPT image on a loop device when running as root.
#include "probe/sysfs.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "probe/test_support.h"
#include "skip.h"

using namespace diskgate::probe;
namespace fs = std::filesystem;

namespace {

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sysfs-test.XXXXXX").string();
    if (!::mkdtemp(pattern.data())) FAIL("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

// sysfs as the kernel lays it out for one disk and its partitions.
struct FakeSysfs {
  TempDir dir;
  fs::path root() const { return dir.path(); }

  fs::path add_disk(const std::string& name, const std::string& dev) {
    fs::path disk = root() / "devices/pci0000:00/0000:00:04.0/virtio1/block" / name;
    write(disk / "dev", dev + "\n");
    link(dev, disk);
    return disk;
  }
  fs::path add_partition(const fs::path& disk, const std::string& name, const std::string& dev,
                         const std::string& start, const std::string& size) {
    fs::path part = disk / name;
    write(part / "dev", dev + "\n");
    write(part / "partition", "1\n");
    write(part / "start", start);
    write(part / "size", size);
    link(dev, part);
    return part;
  }
  void link(const std::string& dev, const fs::path& target) {
    fs::create_directories(root() / "dev/block");
    fs::create_symlink(fs::relative(target, root() / "dev/block"), root() / "dev/block" / dev);
  }
};

}  // namespace

TEST_CASE("a partition: start, size and parent from sysfs") {
  FakeSysfs sysfs;
  fs::path sda = sysfs.add_disk("sda", "8:0");
  sysfs.add_partition(sda, "sda1", "8:1", "2048\n", "1048576\n");
  auto location = partition_location(8, 1, sysfs.root().string());
  REQUIRE(location);
  CHECK(location->start == 2048);
  CHECK(location->size == 1048576);
  CHECK(location->parent_path == "/dev/sda");
  CHECK(location->parent_major == 8);
  CHECK(location->parent_minor == 0);
}

TEST_CASE("the parent path is built under the given /dev") {
  FakeSysfs sysfs;
  fs::path nvme = sysfs.add_disk("nvme0n1", "259:0");
  sysfs.add_partition(nvme, "nvme0n1p3", "259:3", "18446744073709551615\n", "1\n");
  auto location = partition_location(259, 3, sysfs.root().string(), "/tmp/devroot");
  REQUIRE(location);
  CHECK(location->parent_path == "/tmp/devroot/nvme0n1");
  CHECK(location->parent_major == 259);
  CHECK(location->start == 18446744073709551615ull);
}

TEST_CASE("whole disks and unknown devices are not partitions") {
  FakeSysfs sysfs;
  fs::path sda = sysfs.add_disk("sda", "8:0");
  sysfs.add_partition(sda, "sda1", "8:1", "2048\n", "8\n");
  CHECK_FALSE(partition_location(8, 0, sysfs.root().string()));
  CHECK_FALSE(partition_location(8, 2, sysfs.root().string()));
  CHECK_FALSE(partition_location(8, 1, (sysfs.root() / "missing").string()));
}

TEST_CASE("malformed start, size or parent dev give no location") {
  using Fields = std::pair<const char*, const char*>;
  for (auto [start, size] : std::initializer_list<Fields>{{"abc\n", "8\n"}, {"12x\n", "8\n"}, {"\n", "8\n"},
                                                          {"-1\n", "8\n"}, {"2048\n", "99999999999999999999\n"},
                                                          {"2048\n", ""}}) {
    INFO("start '" << start << "' size '" << size << "'");
    FakeSysfs sysfs;
    fs::path sda = sysfs.add_disk("sda", "8:0");
    sysfs.add_partition(sda, "sda1", "8:1", start, size);
    CHECK_FALSE(partition_location(8, 1, sysfs.root().string()));
  }
  FakeSysfs sysfs;
  fs::path sda = sysfs.add_disk("sda", "8:0");
  sysfs.add_partition(sda, "sda1", "8:1", "2048\n", "8\n");
  write(sda / "dev", "eight\n");
  CHECK_FALSE(partition_location(8, 1, sysfs.root().string()));
  fs::remove(sda / "sda1/size");
  CHECK_FALSE(partition_location(8, 1, sysfs.root().string()));
}

namespace {

std::string run(const std::string& command) {
  std::string output;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[256];
    while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
    if (::pclose(pipe) != 0) return "";
  }
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return output;
}

// Detaches the loop device (and any partitions partx added) however the test ends.
struct LoopDevice {
  std::string path;
  ~LoopDevice() {
    if (path.empty()) return;
    int rc = std::system(("partx -d " + path + " >/dev/null 2>&1").c_str());
    rc = std::system(("losetup -d " + path).c_str());
    (void)rc;  // nothing more to do if detaching fails
  }
};

}  // namespace

TEST_CASE("a real loop partition of pt-gpt: sysfs agrees with the table") {
  if (::geteuid() != 0 || !fs::exists("/dev/loop-control"))
    SKIP_TEST("needs root and /dev/loop-control to attach a loop device");
  TempDir dir;
  fs::path image = dir.path() / "pt-gpt.img";
  testing::Image bytes = testing::load_fixture("pt-gpt");
  std::ofstream(image, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                               static_cast<std::streamsize>(bytes.size()));

  LoopDevice loop{run("losetup -f --show -P " + image.string())};
  if (loop.path.empty()) SKIP_TEST("losetup could not attach " + image.string());
  // The kernel's own scan may not run (or may find nothing); partx adds the
  // partitions from user space then.
  std::string part = loop.path + "p1";
  for (int i = 0; i < 20 && !fs::exists(part); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!fs::exists(part)) {
    int rc = std::system(("partx -a " + loop.path).c_str());
    INFO("partx -a exit status " << rc);
  }
  for (int i = 0; i < 40 && !fs::exists(part); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(fs::exists(part));

  struct stat disk_stat {}, part_stat {};
  REQUIRE(::stat(loop.path.c_str(), &disk_stat) == 0);
  REQUIRE(::stat(part.c_str(), &part_stat) == 0);
  REQUIRE(S_ISBLK(part_stat.st_mode));
  auto location = partition_location(major(part_stat.st_rdev), minor(part_stat.st_rdev));
  REQUIRE(location);
  // pt-gpt's partition 1 (blkid: PART_ENTRY_OFFSET=2048, PART_ENTRY_SIZE=512).
  CHECK(location->start == 2048);
  CHECK(location->size == 512);
  CHECK(location->parent_path == loop.path);
  CHECK(location->parent_major == major(disk_stat.st_rdev));
  CHECK(location->parent_minor == minor(disk_stat.st_rdev));
  CHECK_FALSE(partition_location(major(disk_stat.st_rdev), minor(disk_stat.st_rdev)));
}
