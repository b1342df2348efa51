// Notices writes to device nodes in place (mkfs, relabel) the way udevd's
// "watch" option does: inotify close-after-write on the node. Needed when
// no udevd runs, since the kernel sends no uevent for such writes.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace diskgate::udev {

class NodeWatchError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NodeWatcher {
 public:
  struct Received {
    // Watched nodes closed after being opened for writing, each once per
    // call, in order of first arrival.
    std::vector<std::string> written;
    // Watched nodes whose watch the kernel dropped (node deleted, its file
    // system unmounted); they are no longer watched.
    std::vector<std::string> gone;
    // The inotify queue overflowed: writes may have been missed, so the
    // caller rescans every watched node.
    bool overflowed = false;
  };

  NodeWatcher();  // throws NodeWatchError when inotify is unavailable
  ~NodeWatcher();
  NodeWatcher(const NodeWatcher&) = delete;
  NodeWatcher& operator=(const NodeWatcher&) = delete;

  // Returns false when `node` does not exist (it vanished before we got to
  // it: a benign race); throws NodeWatchError for other failures (watch
  // limit reached, permission). Watching a node twice is harmless.
  bool watch(const std::string& node);
  // Forgets `node`; unknown nodes are ignored.
  void unwatch(const std::string& node);
  bool watching(const std::string& node) const;

  int fd() const { return fd_; }

  // Drains every pending inotify event without blocking.
  Received receive();

 private:
  void forget(int wd);
  int fd_ = -1;
  // Two paths to one inode share a watch descriptor, so a descriptor maps
  // to every node watched through it.
  std::map<int, std::set<std::string>> nodes_by_wd_;
  std::map<std::string, int> wd_by_node_;
};

}  // namespace diskgate::udev
