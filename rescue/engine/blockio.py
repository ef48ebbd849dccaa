"""Writing to a target block device: positioned writes, zeroing, flushing.

``BlockTarget`` is the seam the restore writes through; tests can wrap it with a
fault-injecting subclass (an I/O error mid-stream cannot be produced for real)."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
import time

from rescue.errors import TargetRefusedError, from_oserror
from rescue.i18n import _

BLKZEROOUT = 0x127F
BLKFLSBUF = 0x1261
_ZERO_BUF = bytes(4 * 1024 * 1024)
WRITEBACK_EVERY = 32 * 1024 * 1024  # start writeback after this many dirty bytes
SYNC_FILE_RANGE_WRITE = 2

_sync_file_range: ctypes._NamedFuncPointer | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _sync_file_range = _libc.sync_file_range
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong,
                                 ctypes.c_uint]
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _sync_file_range = None


class BlockTarget:
    def __init__(self, path: str, fd: int | None = None) -> None:
        """*fd*: write through (a duplicate of) this descriptor of the disk, the one the
        restore holds open from its preflight on, instead of opening *path* again."""
        self.path = path
        try:
            self.fd = os.dup(fd) if fd is not None else os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise from_oserror(exc, _("Opening {path} for writing").format(path=path)) from exc
        self._zeroout = True
        self._dirty_lo: int | None = None
        self._dirty_hi = 0

    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        view = memoryview(data)
        start = offset
        try:
            while view:
                n = os.pwrite(self.fd, view, offset)
                view = view[n:]
                offset += n
        except OSError as exc:
            raise from_oserror(exc, _("Writing to {path} at byte {offset}").format(
                path=self.path, offset=offset)) from exc
        self._note_dirty(start, offset)

    def _note_dirty(self, start: int, end: int) -> None:
        """Start writeback early, so the disk works while the next chunks are being
        decoded instead of everything waiting in the page cache for the final fsync."""
        lo = start if self._dirty_lo is None else min(self._dirty_lo, start)
        self._dirty_lo, self._dirty_hi = lo, max(self._dirty_hi, end)
        if self._dirty_hi - lo >= WRITEBACK_EVERY and _sync_file_range is not None:
            _sync_file_range(self.fd, lo, self._dirty_hi - lo, SYNC_FILE_RANGE_WRITE)
            self._dirty_lo, self._dirty_hi = None, 0

    def zero(self, offset: int, length: int) -> None:
        """Make [offset, offset+length) read as zero (WRITE ZEROES / discard when the
        device can, plain writes otherwise)."""
        if self._zeroout and offset % 512 == 0 and length % 512 == 0:
            try:
                fcntl.ioctl(self.fd, BLKZEROOUT, struct.pack("QQ", offset, length))
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL):
                    raise from_oserror(exc, _("Zeroing {path} at byte {offset}").format(
                        path=self.path, offset=offset)) from exc
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
            raise from_oserror(exc, _("Reading {path} at byte {offset}").format(
                path=self.path, offset=offset)) from exc

    def flush(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise from_oserror(exc, _("Flushing {path}").format(path=self.path)) from exc

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


def lock_whole_disk(path: str, timeout: float = 30.0) -> int:
    """Open *path* read-only and take a BSD lock on it (``flock(LOCK_EX)``), as
    partitioning tools do (systemd's "Locking Block Device Access"); return the
    descriptor, which holds the lock until it is closed. While it is held, udev neither
    probes the disk nor re-reads its partition table: without it, closing the disk
    after writing it makes udev re-read the table, and the partitions' device nodes
    vanish for a moment, under the restore's next step (mkswap found no /dev/vda3).
    udev holds the lock shared for a moment per event: wait up to *timeout* seconds."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, _("Opening {path}").format(path=path)) from exc
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise TargetRefusedError(_(
                    "Another program keeps {path} locked (a partitioning tool?); nothing "
                    "was written. Let it finish, then start again.").format(path=path)
                ) from None
            time.sleep(0.1)


def claim_exclusive(path: str, write: bool = True) -> int:
    """Open *path* with O_EXCL and return the descriptor: while it is open, nothing else
    can claim the disk exclusively (mount it or one of its partitions, assemble md or
    device-mapper on it, run mkfs or another partitioning tool that opens with O_EXCL),
    and a loop device cannot be re-attached to another file. Refuses a target that
    something else holds (EBUSY)."""
    try:
        return os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_EXCL | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise TargetRefusedError(_(
                "{path} is in use (mounted or held by another driver); nothing was written."
            ).format(path=path)) from exc
        raise from_oserror(exc, _("Opening {path}").format(path=path)) from exc


def ensure_exclusive(path: str) -> None:
    """Refuse a target that something else holds open exclusively (a mounted filesystem,
    md, device-mapper). Opening with O_EXCL fails with EBUSY in that case."""
    os.close(claim_exclusive(path, write=False))
