#include "probe/probe.h"

namespace diskgate::probe {

// Placeholder until the prober lands.
std::optional<PartitionTable> probe_mbr(Source&, const Debug&) { return std::nullopt; }

}  // namespace diskgate::probe
