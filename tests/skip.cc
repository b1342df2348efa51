#include "skip.h"

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

int finish_run(int failed) {
  if (failed != 0) return failed;
  if (skipped().empty()) return 0;
  for (const auto& reason : skipped()) std::cout << "SKIP: " << reason << "\n";
  return 77;  // meson: SKIP
}

}  // namespace diskgate::testing
