"""A FUSE file system whose one file, `stuck.mp4`, looks real but whose reads never return.

    python tests/stuck_fuse.py MOUNTPOINT RELEASE_FILE READ_LOG

`stuck.mp4` has a plausible size (5 MB), so nothing refuses it before reading; every read
appends a line to READ_LOG (so a test knows a reader is stuck) and then waits until
RELEASE_FILE exists, then fails with EIO. The file is opened for direct I/O, so a reader
waits for its own request, and once this server has taken the request the wait is
uninterruptible (state D): even SIGKILL takes effect only when the read returns, as on a hung
hard-mounted network file system. The test's teardown creates RELEASE_FILE
and unmounts. (A FIFO does not do this: it has no size, and the decoder refuses it first.)
"""

import errno
import os
import stat
import sys
import time

from fuse import FUSE, FuseOSError, Operations

SIZE = 5_000_000


class StuckFS(Operations):
    def __init__(self, release: str, log: str):
        self.release, self.log = release, log

    def getattr(self, path, fh=None):
        now = time.time()
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_mtime": now}
        if path == "/stuck.mp4":
            return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": SIZE,
                    "st_mtime": now}  # fmt: skip
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "stuck.mp4"]

    def open(self, path, fi):
        # direct I/O: each read() is one request that the reader waits for itself (through the
        # page cache the kernel reads ahead in the background, and a reader waits killably)
        fi.direct_io = True
        return 0

    def read(self, path, size, offset, fi):
        with open(self.log, "a") as f:
            f.write(f"{offset}\n")
        while not os.path.exists(self.release):
            time.sleep(0.05)
        raise FuseOSError(errno.EIO)


if __name__ == "__main__":
    mountpoint, release, log = sys.argv[1:4]
    # threads: getattr is answered while reads hang; foreground: the test owns the process
    FUSE(StuckFS(release, log), mountpoint, foreground=True, nothreads=False, ro=True, raw_fi=True)
