#!/usr/bin/python3
"""passfs: a passthrough FUSE file system for the file-system tests.

    /usr/bin/python3 passfs.py BACKING MOUNTPOINT

Every operation goes through to the real directory BACKING; run as root,
mounted with allow_other so the instance's users reach it.  It is built
on python3-fusepy (the libfuse 2 API), so -- like many FUSE and network
file systems -- it offers no O_TMPFILE (the kernel answers EOPNOTSUPP)
and refuses renameat2(RENAME_NOREPLACE) (libfuse 2 answers EINVAL to any
rename flag), readdir gives DT_UNKNOWN, and the kernel caches attributes
for the default second.  Runs in the foreground until unmounted."""

import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations, fuse_get_context


class PassFS(Operations):
    def __init__(self, root):
        self.root = os.path.realpath(root)

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def __call__(self, op, path, *args):
        try:
            return super().__call__(op, path, *args)
        except OSError as e:
            raise FuseOSError(e.errno or errno.EIO)

    def _own(self, path):
        """Give a new file to the caller, as a local file system would:
        its uid, and its gid -- or the directory's, under a set-group-id
        directory.  (This process runs as root.)"""
        uid, gid, _ = fuse_get_context()
        real = self._p(path)
        parent = os.stat(os.path.dirname(real))
        if parent.st_mode & 0o2000:
            gid = parent.st_gid
        os.lchown(real, uid, gid)

    def access(self, path, mode):
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._p(path), uid, gid, follow_symlinks=False)

    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path)) if fh is None else os.fstat(fh)
        return {k: getattr(st, k) for k in (
            "st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
            "st_atime", "st_mtime", "st_ctime", "st_ino")}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def readlink(self, path):
        return os.readlink(self._p(path))

    def mknod(self, path, mode, dev):
        os.mknod(self._p(path), mode, dev)
        self._own(path)

    def mkdir(self, path, mode):
        os.mkdir(self._p(path), mode)
        self._own(path)

    def rmdir(self, path):
        os.rmdir(self._p(path))

    def unlink(self, path):
        os.unlink(self._p(path))

    def symlink(self, name, target):
        os.symlink(target, self._p(name))
        self._own(name)

    def link(self, target, name):
        os.link(self._p(name), self._p(target))

    def rename(self, old, new):
        os.rename(self._p(old), self._p(new))

    def utimens(self, path, times=None):
        os.utime(self._p(path), times, follow_symlinks=False)

    def statfs(self, path):
        sv = os.statvfs(self._p(path))
        return {k: getattr(sv, k) for k in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
            "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def open(self, path, flags):
        return os.open(self._p(path), flags)

    def create(self, path, mode, fi=None):
        fd = os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        self._own(path)
        return fd

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is None:
            os.truncate(self._p(path), length)
        else:
            os.ftruncate(fh, length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    def fsync(self, path, datasync, fh):
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def fsyncdir(self, path, datasync, fh):
        fd = os.open(self._p(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: passfs.py BACKING MOUNTPOINT")
    # Permissions are the backing directory's, checked by the kernel
    # (default_permissions), as on a local file system.
    FUSE(PassFS(sys.argv[1]), sys.argv[2], foreground=True, nothreads=False,
         allow_other=True, default_permissions=True)


if __name__ == "__main__":
    main()
