#include "gate/source_state.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace diskgate::gate {

namespace {
std::string nodes_text(const std::vector<const devices::Device*>& devices) {
  std::string text;
  for (const devices::Device* d : devices) text += (text.empty() ? "" : ", ") + d->kernel.node;
  return text;
}
}  // namespace

SourceState evaluate_source(const devices::DeviceMap& map, const devices::Spec& spec) {
  SourceState state;
  devices::Resolution resolution = map.resolve(spec);
  if (resolution.devices.empty()) {
    // (A path spec resolves to its device whatever its state, so an
    // unprobed one is handled below.)
    state.detail = fmt::format("no device matches {}", devices::to_string(spec));
    return state;
  }
  if (resolution.ambiguous) {
    state.kind = SourceState::Kind::ambiguous;
    state.detail = fmt::format("{} matches several devices ({}); name one by UUID_SUB= or PARTUUID=",
                               devices::to_string(spec), nodes_text(resolution.devices));
    return state;
  }
  const devices::Device& first = *resolution.devices.front();
  if (first.identity.state == devices::Identity::State::unprobed) {
    state.kind = SourceState::Kind::unprobed;
    state.detail = fmt::format("{} is being probed", first.kernel.node);
    return state;
  }
  state.fs_uuid = probe::tag_value(first.identity.tags, "UUID");
  state.fstype = probe::tag_value(first.identity.tags, "TYPE");
  state.label = probe::tag_value(first.identity.tags, "LABEL");
  if (state.fstype.empty()) {
    state.kind = SourceState::Kind::absent;
    state.detail = fmt::format("{} ({}) holds no filesystem diskgate knows", devices::to_string(spec),
                               first.kernel.node);
    return state;
  }
  auto view = state.fs_uuid.empty() ? std::nullopt : map.filesystem(state.fs_uuid);
  if (!view) {
    // A filesystem without UUID (rare): the one device is all there is.
    state.kind = SourceState::Kind::ready;
    state.device = first.kernel.node;
    state.members = {first.kernel.node};
    state.device_major = first.kernel.major;
    state.device_minor = first.kernel.minor;
    state.present = state.expected = 1;
    return state;
  }
  state.present = view->present;
  state.expected = view->expected;
  state.members = view->devices;
  state.missing_devids = view->missing_devids;
  state.member_data = view->mount_data;
  state.device = view->devices.empty() ? first.kernel.node : view->devices.front();
  // The label is the whole filesystem's: members that disagree cannot all
  // be what they claim (a disk given another's UUIDs), so none is trusted.
  std::vector<std::string> labels;
  for (const std::string& node : state.members) {
    const devices::Device* member = map.find_node(node);
    state.member_uuid_subs.push_back(member ? probe::tag_value(member->identity.tags, "UUID_SUB") : "");
    std::string label = member ? probe::tag_value(member->identity.tags, "LABEL") : state.label;
    if (label != state.label) labels.push_back(fmt::format("{} has \"{}\"", node, label));
  }
  if (const devices::Device* device = map.find_node(state.device)) {
    state.device_major = device->kernel.major;
    state.device_minor = device->kernel.minor;
  }
  if (!labels.empty()) {
    state.kind = SourceState::Kind::ambiguous;
    state.detail = fmt::format("members of {} disagree on the label ({} has \"{}\", {}): a disk given another's UUIDs?",
                               state.fs_uuid, first.kernel.node, state.label, fmt::join(labels, ", "));
  } else if (!view->conflicts.empty()) {
    state.kind = SourceState::Kind::ambiguous;
    state.detail = fmt::format("filesystem {} has members in conflict (a copied disk?): {}", state.fs_uuid,
                               fmt::join(view->conflicts.front().nodes, ", "));
  } else if (!view->complete) {
    state.kind = SourceState::Kind::incomplete;
    state.detail = fmt::format("filesystem {} has {} of {} members", state.fs_uuid, view->present, view->expected);
    if (!view->missing_devids.empty())
      state.detail += fmt::format(" (missing devid {})", fmt::join(view->missing_devids, ", "));
  } else {
    state.kind = SourceState::Kind::ready;
  }
  return state;
}

}  // namespace diskgate::gate
