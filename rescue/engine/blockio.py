"""Writing to a target block device: positioned writes, zeroing, flushing.

``BlockTarget`` is the seam the restore writes through; tests can wrap it with a
fault-injecting subclass (an I/O error mid-stream cannot be produced for real)."""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from rescue.errors import TargetRefusedError, from_oserror

BLKZEROOUT = 0x127F
BLKFLSBUF = 0x1261
_ZERO_BUF = bytes(4 * 1024 * 1024)


class BlockTarget:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise from_oserror(exc, f"Opening {path} for writing") from exc
        self._zeroout = True

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(self.fd, view, offset)
                view = view[n:]
                offset += n
        except OSError as exc:
            raise from_oserror(exc, f"Writing to {self.path} at byte {offset}") from exc

    def zero(self, offset: int, length: int) -> None:
        """Make [offset, offset+length) read as zero (WRITE ZEROES / discard when the
        device can, plain writes otherwise)."""
        if self._zeroout and offset % 512 == 0 and length % 512 == 0:
            try:
                fcntl.ioctl(self.fd, BLKZEROOUT, struct.pack("QQ", offset, length))
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL):
                    raise from_oserror(exc, f"Zeroing {self.path} at byte {offset}") from exc
                self._zeroout = False
        while length > 0:
            n = min(length, len(_ZERO_BUF))
            self.pwrite(memoryview(_ZERO_BUF)[:n], offset)
            offset += n
            length -= n

    def pread(self, length: int, offset: int) -> bytes:
        try:
            return os.pread(self.fd, length, offset)
        except OSError as exc:
            raise from_oserror(exc, f"Reading {self.path} at byte {offset}") from exc

    def flush(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise from_oserror(exc, f"Flushing {self.path}") from exc

    def drop_cache(self) -> None:
        """Forget cached pages so the next reads come from the device itself."""
        self.flush()
        try:
            fcntl.ioctl(self.fd, BLKFLSBUF, 0)
        except OSError:
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def ensure_exclusive(path: str) -> None:
    """Refuse a target that something else holds open exclusively (a mounted filesystem,
    md, device-mapper). Opening with O_EXCL fails with EBUSY in that case."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise TargetRefusedError(
                f"{path} is in use (mounted or held by another driver); nothing was written."
            ) from exc
        raise from_oserror(exc, f"Opening {path}") from exc
    os.close(fd)
