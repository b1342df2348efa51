# What the FUSE filesystems of the tests (tests/daemon/hanging_fs.py) and of
# bench/slow_fs.py share: MOUNTPOINT shows the files of SOURCE as they are.
# Each adds what its opens and reads do.
import os

from fusepy import FuseOSError, Operations


class PassthroughFs(Operations):
    def __init__(self, source):
        self.source = source

    def _real(self, path):
        return os.path.join(self.source, path.lstrip("/"))

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._real(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime")
        return {key: getattr(st, key) for key in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._real(path))

    def release(self, path, fh):
        os.close(fh)
