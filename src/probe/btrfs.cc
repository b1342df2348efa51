#include "probe/probe.h"

namespace diskgate::probe {

// Placeholder until the prober lands.
std::optional<Superblock> probe_btrfs(Source&, const Debug&) { return std::nullopt; }

}  // namespace diskgate::probe
