// The executable's side of cli/bus_module.h: finding and loading
// diskgatectl-bus.so.
#include "cli/bus_module.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#ifndef DISKGATE_BUS_MODULE_DIR
#error "DISKGATE_BUS_MODULE_DIR (where diskgatectl-bus.so is installed) must be defined by the build"
#endif

namespace diskgate::cli {

namespace {

// Where to look, in order:
//   1. the executable's own directory: in the build tree the module is
//      built next to diskgatectl, and a build-tree diskgatectl (tests,
//      benchmarks) must not pick up an older module installed earlier;
//   2. the directory chosen at build time (libdir/diskgate), where
//      `meson install` puts it.
std::vector<std::string> candidates() {
  std::vector<std::string> paths;
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<std::size_t>(n));
    dir.erase(dir.rfind('/') + 1);
    paths.push_back(dir + bus_module_file);
  }
  std::string installed = std::string(DISKGATE_BUS_MODULE_DIR) + "/" + bus_module_file;
  if (paths.empty() || paths.front() != installed) paths.push_back(installed);
  return paths;
}

// Loads one candidate; an empty string on success, else why not.
std::string try_load(const std::string& path, const BusModule*& module) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::strerror(errno);
  // Code run as whoever runs diskgatectl (often root) must be theirs or
  // root's, and not writable by everyone.
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return "refused: owned by uid " + std::to_string(st.st_uid) + ", neither root nor us";
  if (st.st_mode & S_IWOTH) return "refused: writable by others";
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = ::dlerror();
    return error != nullptr ? error : "dlopen failed";
  }
  auto entry = reinterpret_cast<const BusModule* (*)()>(::dlsym(handle, bus_module_entry));
  if (entry == nullptr) {
    ::dlclose(handle);
    return std::string("no ") + bus_module_entry + "()";
  }
  const BusModule* table = entry();
  if (table == nullptr || table->abi != bus_module_abi || table->size != sizeof(BusModule)) {
    ::dlclose(handle);
    return "built for another diskgatectl (interface version mismatch)";
  }
  module = table;
  return {};
}

}  // namespace

const BusModule* load_bus_module(std::ostream& err) {
  static const BusModule* module = nullptr;
  if (module != nullptr) return module;
  std::string tried;
  for (const std::string& path : candidates()) {
    std::string why = try_load(path, module);
    if (module != nullptr) return module;
    tried += (tried.empty() ? "" : "; ") + path + ": " + why;
  }
  err << "diskgatectl: cannot load the D-Bus commands' module " << bus_module_file << " (" << tried << ")"
      << std::endl;
  return nullptr;
}

}  // namespace diskgate::cli
