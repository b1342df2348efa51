#!/usr/bin/python3
# A FUSE filesystem for bench/slowdisk: MOUNTPOINT shows the files of
# SOURCE, and every read of a file waits DELAY_MS first, one read at a time
# (a lock: as one disk head, reads queue behind each other). A loop device
# over such a file is a slow disk.
#
#   slow_fs.py SOURCE MOUNTPOINT LOG DELAY_MS
#
# Mounted with direct_io: the kernel keeps no page cache for these files,
# so every read the loop driver makes of its backing file reaches this
# process (the loop device's own page cache still serves a block read
# twice on the same device; a new loop device starts with none).
#
# Each read appends one line to LOG, once it is served:
#   START_NS END_NS OFFSET SIZE
# (CLOCK_MONOTONIC nanoseconds, as bench-hotplug --trace prints), so the
# bench counts the reads of any stretch of time. Writes pass through at
# once. Runs in the foreground until unmounted.
import errno
import os
import sys
import threading
import time

from fusepy import FUSE, FuseOSError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from passthrough_fs import PassthroughFs  # noqa: E402


class SlowFs(PassthroughFs):
    def __init__(self, source, log, delay):
        super().__init__(source)
        self.delay = delay
        self.lock = threading.Lock()
        self.log = open(log, "a", buffering=1)

    def open(self, path, flags):
        try:
            return os.open(self._real(path), flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR))
        except OSError as e:
            raise FuseOSError(e.errno)

    def read(self, path, size, offset, fh):
        with self.lock:
            start = time.monotonic_ns()
            time.sleep(self.delay)
            data = os.pread(fh, size, offset)
            self.log.write(f"{start} {time.monotonic_ns()} {offset} {size}\n")
        return data

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        raise FuseOSError(errno.EPERM)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        os.fsync(fh)
        return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: slow_fs.py SOURCE MOUNTPOINT LOG DELAY_MS")
    source, mountpoint, log, delay_ms = sys.argv[1:]
    FUSE(SlowFs(source, log, float(delay_ms) / 1000), mountpoint, foreground=True, nothreads=False,
         direct_io=True)
