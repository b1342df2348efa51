// `diskgatectl probe`: blkid's output from our own probers.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "probe/format.h"

namespace diskgate::cli {

struct ProbeOptions {
  bool low_level = false;  // -p
  probe::OutputFormat format = probe::OutputFormat::full;
  std::vector<std::string> tags;  // -s
  bool debug = false;
  std::vector<std::string> paths;
};

// Probes every path (an error on one does not stop the others) and returns
// blkid's exit status: 0 something found, 2 nothing, 8 ambivalent.
int run_probe(const ProbeOptions& options, std::ostream& out, std::ostream& err);

}  // namespace diskgate::cli
