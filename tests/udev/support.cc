#define CATCH_CONFIG_RUNNER
#include "udev/support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace diskgate::testing {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

bool in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && access((dir + "/" + program).c_str(), X_OK) == 0) return true;
  return false;
}

// A process whose name says it is udevd (main process or worker).
std::optional<pid_t> running_udevd() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // "PID (COMM) STATE ...": a zombie has exited, whoever has yet to reap it.
    auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 2 >= line.size()) continue;
    std::string name = line.substr(open + 1, close - open - 1);
    if (line[close + 2] == 'Z') continue;
    if (name == "systemd-udevd" || name == "udevd" || name == "(udev-worker)") return std::stoi(pid);
  }
  return std::nullopt;
}

constexpr const char* udevd_binary = "/lib/systemd/systemd-udevd";
constexpr const char* udevd_control = "/run/udev/control";
constexpr const char* udevd_run_dir = "/run/udev";

}  // namespace

std::optional<std::string> loop_unavailable() {
  if (geteuid() != 0) return "needs root to attach loop devices and write sysfs uevent files";
  if (access("/dev/loop-control", R_OK | W_OK) != 0) return "/dev/loop-control unusable: " + errno_text();
  for (const char* tool : {"losetup", "sfdisk", "partx"})
    if (!in_path(tool)) return std::string(tool) + " not found in PATH";
  return std::nullopt;
}

std::string run(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command + ": " + errno_text());
  std::string out;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  int status = pclose(pipe);
  if (status != 0)
    throw std::runtime_error(command + " failed (status " + std::to_string(status) + "), output: " + out);
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + errno_text());
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(err));
}

TempDir::TempDir() {
  char templ[] = "/tmp/diskgate-udev-test.XXXXXX";
  if (!mkdtemp(templ)) throw std::runtime_error(std::string("mkdtemp: ") + errno_text());
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void make_image(const std::string& path, std::uint64_t bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + errno_text());
  int r = ftruncate(fd, static_cast<off_t>(bytes));
  int err = errno;
  close(fd);
  if (r != 0) throw std::runtime_error("cannot size " + path + ": " + std::strerror(err));
}

void make_gpt_image(const std::string& path) {
  make_image(path, gpt_image_bytes);
  // Sectors of 512 bytes: 2048 sectors = 1 MiB, 4096 = 2 MiB.
  run("printf 'label: gpt\\nstart=2048, size=2048\\nstart=4096, size=4096\\n' | sfdisk --quiet '" + path +
      "' >/dev/null");
}

LoopDevice::LoopDevice(const std::string& image, bool partscan) {
  std::string out = run(std::string("losetup --find --show ") + (partscan ? "--partscan " : "") + "'" + image + "'");
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (out.rfind("/dev/loop", 0) != 0) throw std::runtime_error("losetup printed no loop device: " + out);
  node_ = out;
  name_ = out.substr(5);
  attached_ = true;
  // A kernel built without the image's partition parser (CONFIG_EFI_PARTITION
  // unset) scans and finds nothing; ask it to add the partitions sfdisk
  // wrote through BLKPG instead. Same kernel partition devices, same uevents.
  if (partscan && access(("/sys/block/" + name_ + "/" + name_ + "p1").c_str(), F_OK) != 0) {
    try {
      run("partx --add " + node_);
    } catch (...) {
      detach();  // no destructor runs for a half-built object
      throw;
    }
    partitions_by_partx_ = true;
  }
}

LoopDevice::~LoopDevice() {
  try {
    detach();
  } catch (const std::exception& e) {
    std::cerr << "cleanup: " << e.what() << "\n";
  }
}

void LoopDevice::detach() {
  if (!attached_) return;
  attached_ = false;
  run("losetup --detach " + node_);
}

std::pair<unsigned, unsigned> device_number(const std::string& node) {
  struct stat st {};
  if (stat(node.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + node + ": " + errno_text());
  return {major(st.st_rdev), minor(st.st_rdev)};
}

Udevd::Udevd(const std::string& log_path) {
  if (access(udevd_control, F_OK) == 0) {
    if (!in_path("udevadm")) {
      skip_reason_ = std::string(udevd_control) + " exists but udevadm is missing to ping it";
      return;
    }
    if (std::system("udevadm control --ping --timeout=2 >/dev/null 2>&1") == 0) return;  // one runs: use it
    if (auto pid = running_udevd()) {
      skip_reason_ = "a udevd runs (pid " + std::to_string(*pid) + ") but does not answer on " + udevd_control;
      return;
    }
    // udevd never unlinks its control socket, so it outlives a udevd that
    // died. Nobody is there: take the dead socket away and start our own.
    if (unlink(udevd_control) != 0) {
      skip_reason_ = std::string("cannot remove the stale ") + udevd_control + ": " + errno_text();
      return;
    }
  } else if (auto pid = running_udevd()) {
    skip_reason_ = "a udevd runs (pid " + std::to_string(*pid) + ") but " + udevd_control + " is absent";
    return;
  }
  if (access(udevd_binary, X_OK) != 0) {
    skip_reason_ = std::string(udevd_binary) + " missing: " + errno_text();
    return;
  }
  created_run_udev_ = access(udevd_run_dir, F_OK) != 0;
  started_ = true;
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log < 0) throw std::runtime_error("cannot create " + log_path + ": " + errno_text());
  // In the foreground rather than --daemon: the pid we fork is then the
  // daemon's own, the one we stop at the end.
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log);
    throw std::runtime_error("fork: " + errno_text());
  }
  if (pid == 0) {
    // Should the test die without running destructors, udevd goes too.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    execl(udevd_binary, "systemd-udevd", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(log);
  pid_ = pid;

  // Ready once its control socket exists and it answers a ping through its
  // event loop, by which time its uevent socket is listening too.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto log_text = [&] {
    std::ifstream in(log_path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  while (access(udevd_control, F_OK) != 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      skip_reason_ = "systemd-udevd exited at start (status " + std::to_string(status) + "): " + log_text();
      return;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      skip_reason_ = "systemd-udevd made no control socket within 10 s: " + log_text();
      return;  // the destructor stops it
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (in_path("udevadm")) run("udevadm control --ping --timeout=10");
}

Udevd::~Udevd() {
  if (pid_ > 0) stop();
  // Our udevd leaves its control socket behind (and /run/udev, when it made
  // it, with a database of our test devices), which would make everyone
  // believe a udevd still runs: take away what was not there before.
  if (created_run_udev_) {
    std::error_code ec;
    std::filesystem::remove_all(udevd_run_dir, ec);
    if (ec) std::cerr << "cleanup: cannot remove " << udevd_run_dir << ": " << ec.message() << "\n";
  } else if (started_) {
    unlink(udevd_control);  // ours, and nobody answers on it any more
  }
}

void Udevd::stop() {
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool exited = false;
  while (!exited) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    exited = r == pid_ || (r < 0 && errno != EINTR);
    if (exited || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exited) {
    std::cerr << "cleanup: systemd-udevd " << pid_ << " ignored SIGTERM; killing it\n";
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
}

bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(left.count()) + 1);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) throw std::runtime_error("poll: " + errno_text());
  }
}

}  // namespace diskgate::testing

int main(int argc, char* argv[]) {
  if (auto why = diskgate::testing::loop_unavailable()) return diskgate::testing::skip_binary(argc, argv, *why);
  return diskgate::testing::finish_run(Catch::Session().run(argc, argv));
}
