#!/usr/bin/python3
# A FUSE filesystem for tests: MOUNTPOINT shows the files of SOURCE, read
# only. Reads of files whose name starts with "hang" block for as long as the
# file HOLD exists, so a loop device on one of them is a disk whose reads
# hang, for real (the loop driver's worker waits in the read).
#
#   hanging_fs.py SOURCE MOUNTPOINT HOLD
#
# Runs in the foreground until unmounted; killing it makes every read that
# waits fail with ENOTCONN.
import errno
import os
import sys
import time

from fusepy import FUSE, FuseOSError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from passthrough_fs import PassthroughFs  # noqa: E402


class HangingFs(PassthroughFs):
    def __init__(self, source, hold):
        super().__init__(source)
        self.hold = hold

    def getattr(self, path, fh=None):
        attributes = super().getattr(path, fh)
        if not path.endswith("/") and path != "/":
            attributes["st_mode"] &= ~0o222  # read only
        return attributes

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        return os.open(self._real(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        if os.path.basename(path).startswith("hang"):
            while os.path.exists(self.hold):
                time.sleep(0.05)
        return os.pread(fh, size, offset)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: hanging_fs.py SOURCE MOUNTPOINT HOLD")
    source, mountpoint, hold = sys.argv[1:]
    FUSE(HangingFs(source, hold), mountpoint, foreground=True, nothreads=False, ro=True)
