#include "skip.h"

#include <cstdlib>
#include <cstring>
#include <iostream>

namespace diskgate::testing {
namespace {
std::vector<std::string>& skipped() {
  static std::vector<std::string> list;
  return list;
}
}  // namespace

void note_skip(const std::string& reason) { skipped().push_back(reason); }

const std::vector<std::string>& skips() { return skipped(); }

bool sanitized_run() {
  const char* value = std::getenv("DISKGATE_SANITIZED");
  return value != nullptr && std::strcmp(value, "1") == 0;
}

int finish_run(int failed) {
  if (tap_reporter_active()) return 0;
  if (failed != 0) return failed;
  if (skipped().empty()) return 0;
  for (const auto& reason : skipped()) std::cout << "SKIP: " << reason << "\n";
  return 77;  // meson: SKIP
}

int skip_binary(int argc, char* argv[], const std::string& reason) {
  bool tap = false;
  for (int i = 1; i < argc; ++i) {
    if ((std::strcmp(argv[i], "-r") == 0 || std::strcmp(argv[i], "--reporter") == 0) && i + 1 < argc)
      tap = tap || std::strcmp(argv[i + 1], "diskgate-tap") == 0;
    if (std::strcmp(argv[i], "-r=diskgate-tap") == 0 || std::strcmp(argv[i], "--reporter=diskgate-tap") == 0)
      tap = true;
  }
  std::string line = reason;
  for (char& c : line)
    if (c == '\n') c = ' ';
  if (tap) {
    std::cout << "1..0 # SKIP " << line << std::endl;
    return 0;
  }
  std::cout << "SKIP: " << line << "\n";
  return 77;  // meson: SKIP
}

}  // namespace diskgate::testing
