// diskgatectl's bus commands live in a module, diskgatectl-bus.so, that the
// executable loads with dlopen only when one of them runs: sdbus-c++ and
// libsystemd (with gcrypt, lzma, zstd, lz4, cap) are a dozen shared
// libraries, and mapping and relocating them would cost `diskgatectl probe`
// more than probing a disk does (README, bench/probe).
//
// The module exports one C function, diskgate_bus_module(), returning the
// table below. Both sides are built from the same tree; `abi` and `size`
// catch a module left over from another build.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>

#include "cli/bus_commands.h"

namespace diskgate::cli {

// Bump on any change to BusModule or to the signatures it holds.
inline constexpr int bus_module_abi = 1;
inline constexpr const char* bus_module_file = "diskgatectl-bus.so";
inline constexpr const char* bus_module_entry = "diskgate_bus_module";

struct BusModule {
  int abi;           // bus_module_abi
  std::size_t size;  // sizeof(BusModule)
  int (*list)(const BusOptions&, std::ostream& out, std::ostream& err);
  int (*resolve)(const BusOptions&, const std::string& spec, std::ostream& out, std::ostream& err);
  int (*resolve_all)(const BusOptions&, const std::string& spec, std::ostream& out, std::ostream& err);
  int (*fs)(const BusOptions&, const std::string& uuid, std::ostream& out, std::ostream& err);
  int (*wait)(const BusOptions&, const WaitOptions&, std::ostream& out, std::ostream& err);
  int (*monitor)(const BusOptions&, std::ostream& out, std::ostream& err);
  int (*status)(const BusOptions&, std::ostream& out, std::ostream& err);
  int (*gate_method)(const BusOptions&, const std::string& method, std::ostream& err);
};

// In the executable: loads the module on first use (later calls return the
// same table). On failure prints one "diskgatectl: ..." line on `err`
// naming every path it tried, and returns nullptr.
const BusModule* load_bus_module(std::ostream& err);

}  // namespace diskgate::cli

extern "C" const diskgate::cli::BusModule* diskgate_bus_module();
