// The daemon's side of D-Bus, on sd-bus itself (libsystemd): the
// connection, and a writer for the few container types the API uses.
// sdbus-c++ stays for diskgatectl; the daemon serves its device objects
// from one fallback vtable with a node enumerator, which sdbus-c++ 1.2 has
// no way to do (it makes an object of about 4 KB per device, and exposes no
// handle to its sd_bus).
#pragma once

#include <systemd/sd-bus.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace diskgate::dbus {

// A failed sd-bus call, with what was being done and strerror's text.
class BusError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An error a method handler replies with: a D-Bus error name and message.
class MethodError : public std::runtime_error {
 public:
  MethodError(const char* name, const std::string& message) : std::runtime_error(message), name_(name) {}
  const char* name() const noexcept { return name_; }

 private:
  const char* name_;
};

inline constexpr const char* error_failed = "org.freedesktop.DBus.Error.Failed";
inline constexpr const char* error_invalid_args = "org.freedesktop.DBus.Error.InvalidArgs";

[[noreturn]] void throw_bus_error(int result, std::string_view what);
// `result` of an sd-bus call; throws BusError ("`what`: strerror") when
// negative. Inline, and `what` read only on failure: a reply of thousands of
// devices makes about a hundred calls a device.
inline int check(int result, const char* what) {
  if (result < 0) throw_bus_error(result, what);
  return result;
}
inline int check(int result, const std::string& what) { return check(result, what.c_str()); }

struct SlotUnref {
  void operator()(sd_bus_slot* slot) const noexcept { sd_bus_slot_unref(slot); }
};
// A registration (vtable, object manager, enumerator): unregistered when freed.
using Slot = std::unique_ptr<sd_bus_slot, SlotUnref>;

class Bus {
 public:
  // Connects to `address` ("system", "session" or a bus address) and takes
  // `name`. `call_timeout_usec` bounds calls made on it (RequestName among
  // them); sd-bus's default is 25 s. Throws BusError.
  Bus(const std::string& address, const char* name, std::optional<std::uint64_t> call_timeout_usec);
  // Sends what is queued and closes.
  ~Bus() noexcept;
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  sd_bus* get() const noexcept { return bus_; }
  // False once the bus is lost: nothing can be sent on it any more.
  bool is_open() const noexcept;
  // What the event loop polls for: throws BusError once the bus is closed.
  struct PollData {
    int fd;
    short events;
    std::uint64_t timeout_usec;  // absolute CLOCK_MONOTONIC, UINT64_MAX for none
  };
  PollData poll_data() const;
  // Processes what is pending; throws BusError (ENOTCONN, ECONNRESET, ...)
  // when the bus went away.
  void process();
  void release_name() noexcept;

 private:
  sd_bus* bus_ = nullptr;
  const char* name_;
};

// Writes into an sd-bus message; every failure throws BusError.
class MessageWriter {
 public:
  explicit MessageWriter(sd_bus_message* message) : message_(message) {}
  // (Inline: called a hundred times a device for the whole map.)
  void open(char type, const char* contents) {
    check(sd_bus_message_open_container(message_, type, contents), "writing a D-Bus message");
  }
  void close() { check(sd_bus_message_close_container(message_), "writing a D-Bus message"); }
  void append(const std::string& value) { append(value.c_str()); }
  void append(const char* value) { basic('s', value); }
  void append_object_path(const std::string& path) { basic('o', path.c_str()); }
  void append(std::uint64_t value) { basic('t', &value); }
  void append(std::uint32_t value) { basic('u', &value); }
  void append(bool value) {
    int boolean = value;  // D-Bus booleans are 32 bits wide
    basic('b', &boolean);
  }
  void append(const std::vector<std::string>& values);
  void append(const std::vector<std::uint64_t>& values);
  // One {sv} entry of an a{sv}.
  template <typename Value>
  void entry(const char* key, const Value& value) {
    open('e', "sv");
    append(key);
    open('v', signature(value));
    append(value);
    close();
    close();
  }

 private:
  static const char* signature(const std::string&) { return "s"; }
  static const char* signature(std::uint64_t) { return "t"; }
  static const char* signature(std::uint32_t) { return "u"; }
  static const char* signature(bool) { return "b"; }
  static const char* signature(const std::vector<std::string>&) { return "as"; }
  static const char* signature(const std::vector<std::uint64_t>&) { return "at"; }
  void basic(char type, const void* value) {
    check(sd_bus_message_append_basic(message_, type, value), "writing a D-Bus message");
  }
  sd_bus_message* message_;
};

struct MessageUnref {
  void operator()(sd_bus_message* message) const noexcept { sd_bus_message_unref(message); }
};
using Message = std::unique_ptr<sd_bus_message, MessageUnref>;

// Runs a handler's body for sd-bus, which is C: no exception may cross it.
// A MethodError becomes that error reply, anything else Failed.
template <typename Body>
int answer_call(sd_bus_error* error, Body&& body) noexcept {
  try {
    return body();
  } catch (const MethodError& e) {
    return sd_bus_error_set(error, e.name(), e.what());
  } catch (const std::exception& e) {
    return sd_bus_error_set(error, error_failed, e.what());
  }
}

}  // namespace diskgate::dbus
