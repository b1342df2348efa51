#include "dbus/bus.h"

#include <poll.h>

#include <cstring>

#include <fmt/format.h>

namespace diskgate::dbus {

void throw_bus_error(int result, std::string_view what) {
  throw BusError(fmt::format("{}: {}", what, std::strerror(-result)));
}

Bus::Bus(const std::string& address, const char* name, std::optional<std::uint64_t> call_timeout_usec)
    : name_(name) {
  try {
    if (address == "system") {
      check(sd_bus_open_system(&bus_), "cannot connect to the system bus");
    } else if (address == "session") {
      check(sd_bus_open_user(&bus_), "cannot connect to the session bus");
    } else {
      check(sd_bus_new(&bus_), "sd_bus_new");
      check(sd_bus_set_address(bus_, address.c_str()), fmt::format("bus address {}", address));
      check(sd_bus_set_bus_client(bus_, 1), "sd_bus_set_bus_client");
      check(sd_bus_start(bus_), fmt::format("cannot connect to {}", address));
    }
    if (call_timeout_usec) check(sd_bus_set_method_call_timeout(bus_, *call_timeout_usec), "call timeout");
    check(sd_bus_request_name(bus_, name_, 0), fmt::format("cannot own {}", name_));
  } catch (...) {
    sd_bus_close_unref(bus_);
    throw;
  }
}

Bus::~Bus() noexcept { sd_bus_flush_close_unref(bus_); }

bool Bus::is_open() const noexcept { return sd_bus_is_open(bus_) > 0; }

Bus::PollData Bus::poll_data() const {
  PollData data{};
  data.fd = check(sd_bus_get_fd(bus_), "sd_bus_get_fd");
  data.events = static_cast<short>(check(sd_bus_get_events(bus_), "sd_bus_get_events"));
  check(sd_bus_get_timeout(bus_, &data.timeout_usec), "sd_bus_get_timeout");
  return data;
}

void Bus::process() {
  while (check(sd_bus_process(bus_, nullptr), "D-Bus") > 0) {
  }
}

void Bus::release_name() noexcept {
  if (is_open()) sd_bus_release_name(bus_, name_);
}

void MessageWriter::append(const std::vector<std::string>& values) {
  open('a', "s");
  for (const std::string& value : values) append(value);
  close();
}
void MessageWriter::append(const std::vector<std::uint64_t>& values) {
  open('a', "t");
  for (std::uint64_t value : values) append(value);
  close();
}

}  // namespace diskgate::dbus
