#include "udev/node_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <system_error>

namespace diskgate::udev {
namespace {

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

void add_once(std::vector<std::string>& list, const std::string& node) {
  if (std::find(list.begin(), list.end(), node) == list.end()) list.push_back(node);
}

}  // namespace

NodeWatcher::NodeWatcher() {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) throw NodeWatchError("inotify: cannot create instance: " + errno_text(errno));
}

NodeWatcher::~NodeWatcher() {
  if (fd_ >= 0) close(fd_);
}

bool NodeWatcher::watch(const std::string& node) {
  int wd = inotify_add_watch(fd_, node.c_str(), IN_CLOSE_WRITE);
  if (wd < 0) {
    if (errno == ENOENT) return false;
    throw NodeWatchError("inotify: cannot watch " + node + ": " + errno_text(errno));
  }
  // The path may now lead to a new inode (node re-created before we read
  // the old watch's IN_IGNORED): move it to the new descriptor.
  if (auto old = wd_by_node_.find(node); old != wd_by_node_.end() && old->second != wd) {
    auto& others = nodes_by_wd_[old->second];
    others.erase(node);
    if (others.empty()) {
      inotify_rm_watch(fd_, old->second);  // fails harmlessly if already dropped
      nodes_by_wd_.erase(old->second);
    }
  }
  wd_by_node_[node] = wd;
  nodes_by_wd_[wd].insert(node);
  return true;
}

void NodeWatcher::unwatch(const std::string& node) {
  auto it = wd_by_node_.find(node);
  if (it == wd_by_node_.end()) return;
  int wd = it->second;
  wd_by_node_.erase(it);
  auto& nodes = nodes_by_wd_[wd];
  nodes.erase(node);
  if (nodes.empty()) {
    nodes_by_wd_.erase(wd);
    // The IN_IGNORED this queues finds no entry and is skipped.
    inotify_rm_watch(fd_, wd);
  }
}

bool NodeWatcher::watching(const std::string& node) const {
  return wd_by_node_.contains(node);
}

void NodeWatcher::forget(int wd) {
  auto it = nodes_by_wd_.find(wd);
  if (it == nodes_by_wd_.end()) return;
  for (const auto& node : it->second) wd_by_node_.erase(node);
  nodes_by_wd_.erase(it);
}

NodeWatcher::Received NodeWatcher::receive() {
  Received out;
  // Room for many events per read; events for device nodes carry no name.
  alignas(inotify_event) char buffer[16 * 1024];
  for (;;) {
    ssize_t n = read(fd_, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      throw NodeWatchError("inotify: cannot read events: " + errno_text(errno));
    }
    if (n == 0) break;
    std::size_t pos = 0;
    while (pos + sizeof(inotify_event) <= static_cast<std::size_t>(n)) {
      inotify_event event;
      std::memcpy(&event, buffer + pos, sizeof event);
      pos += sizeof(inotify_event) + event.len;
      if (event.mask & IN_Q_OVERFLOW) {
        out.overflowed = true;
        continue;
      }
      auto it = nodes_by_wd_.find(event.wd);
      if (it == nodes_by_wd_.end()) continue;  // unwatched meanwhile
      if (event.mask & IN_CLOSE_WRITE)
        for (const auto& node : it->second) add_once(out.written, node);
      if (event.mask & IN_IGNORED) {
        for (const auto& node : it->second) add_once(out.gone, node);
        forget(event.wd);
      }
    }
  }
  return out;
}

}  // namespace diskgate::udev
