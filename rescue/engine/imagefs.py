"""The FUSE filesystem of a mounted image: its partitions as read-only files.

::

    <mount point>/
      parts/p1.img  parts/p2.img ...   each partition's bytes (d2p1.img ... with several disks)
      p2/ ...                          folders where the partitions' filesystems get mounted

Served by mfusepy (ctypes bindings of libfuse 3, docs/BROWSE.md says why) in a thread of
the ``rescue mount`` process; each read goes to a :class:`~rescue.engine.imageread.
RangeReader`. A read that touches a missing or damaged chunk answers EIO for that read
and logs one sentence per chunk; every other range stays readable.

mfusepy is imported when a filesystem is served, not with this module: it loads libfuse
when imported, and a machine without libfuse must still list, verify and restore."""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from rescue.engine.imageread import RangeReader
from rescue.errors import DeviceError, RescueError
from rescue.i18n import _

log = logging.getLogger(__name__)

PARTS_DIR = "parts"
#: how long the kernel may keep names and attributes: the image never changes
ATTR_TIMEOUT = 3600.0
START_TIMEOUT = 30.0  # seconds for libfuse to mount
#: the kernel's read-ahead on the partition files, in KiB (its default, 128, makes 128 KiB
#: requests: a 1 GiB file copied out of the image ran at 65% of a restore's speed; with
#: 4 MiB, requests of up to 1 MiB and about the restore's speed, bench/browse.py)
READ_AHEAD_KB = 4096
FUSE_THREADS = 16  # requests served at once (loop devices, readers, the kernel's readahead)


class ImageFilesystem:
    """The FUSE operations (mfusepy calls them by name). *files*: partition file name ->
    reader; mount points (folders at the top) are added by :meth:`add_folder` before a
    filesystem is mounted on them. *report*: called with each read error's sentence,
    once per damaged place."""

    use_ns = True  # times in nanoseconds (mfusepy)

    def __init__(self, files: dict[str, RangeReader], label: str,
                 report: Callable[[str], None] | None = None) -> None:
        self.files = files
        self.label = label
        self.folders: set[str] = set()
        self.ready = threading.Event()
        self._report = report or (lambda text: log.error("%s", text))
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        self._now = time.time_ns()
        self.read_errors = 0

    def add_folder(self, name: str) -> None:
        self.folders.add(name)

    def drop_folder(self, name: str) -> None:
        self.folders.discard(name)

    # -- mfusepy operations ------------------------------------------------------------

    def init(self, path: str) -> None:
        self.ready.set()

    def destroy(self, path: str) -> None:
        pass

    def _dir(self, links: int) -> dict[str, Any]:
        return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": links, "st_uid": 0,
                "st_gid": 0, "st_size": 0, "st_atime": self._now, "st_mtime": self._now,
                "st_ctime": self._now}

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == "/":
            return self._dir(3 + len(self.folders))
        if path == "/" + PARTS_DIR:
            return self._dir(2)
        name = path[1:]
        if name in self.folders:
            return self._dir(2)
        reader = self._reader(path)
        if reader is None:
            raise OSError(errno.ENOENT, "")
        return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_uid": 0, "st_gid": 0,
                "st_size": reader.size, "st_blocks": (reader.size + 511) // 512,
                "st_atime": self._now, "st_mtime": self._now, "st_ctime": self._now}

    def _reader(self, path: str) -> RangeReader | None:
        head, _sep, name = path[1:].partition("/")
        return self.files.get(name) if head == PARTS_DIR else None

    def readdir(self, path: str, fh: int) -> list[str]:
        if path == "/":
            return [".", "..", PARTS_DIR, *sorted(self.folders)]
        if path == "/" + PARTS_DIR:
            return [".", "..", *sorted(self.files)]
        if path[1:] in self.folders:
            return [".", ".."]
        raise OSError(errno.ENOENT, "")

    def open(self, path: str, flags: int) -> int:
        if self._reader(path) is None:
            raise OSError(errno.ENOENT, "")
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise OSError(errno.EROFS, "")
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        reader = self._reader(path)
        if reader is None:
            raise OSError(errno.ENOENT, "")
        try:
            return reader.read(offset, size)
        except RescueError as exc:
            self._failed(str(exc))
            raise OSError(errno.EIO, "") from None
        except Exception as exc:  # never a crash of the filesystem: an I/O error
            self._failed(f"{reader.where}, offset {offset}: {exc!r}")
            raise OSError(errno.EIO, "") from None

    def _failed(self, sentence: str) -> None:
        with self._lock:
            self.read_errors += 1
            if sentence in self._reported:
                return
            self._reported.add(sentence)
        self._report(_("Read error, answered as an I/O error: {why}").format(why=sentence))

    def statfs(self, path: str) -> dict[str, int]:
        total = sum(r.size for r in self.files.values())
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": total // 4096, "f_bfree": 0,
                "f_bavail": 0, "f_files": len(self.files) + 2, "f_ffree": 0,
                "f_namemax": 255}


class FuseServer:
    """*fs* served on *where* by libfuse in a thread of this process, until
    :meth:`stop` (or an unmount from outside) ends it."""

    def __init__(self, fs: ImageFilesystem, where: str) -> None:
        self.fs, self.where = fs, where
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Mount and serve; returns once the filesystem answers. Raises DeviceError with
        a sentence when FUSE is not available."""
        try:
            fuse = _mfusepy()
        except (ImportError, OSError) as exc:
            raise DeviceError(_(
                "FUSE is not available ({why}); install the fuse3 package (make setup) and "
                "make sure /dev/fuse exists (modprobe fuse).").format(why=exc)) from None
        if not os.path.exists("/dev/fuse"):
            raise DeviceError(_("/dev/fuse does not exist; load the fuse module (modprobe "
                                "fuse) and try again."))

        def serve() -> None:
            try:
                fuse.FUSE(self.fs, self.where, foreground=True, ro=True, allow_other=True,
                          default_permissions=True, fsname=self.fs.label, subtype="rescue",
                          kernel_cache=True, attr_timeout=ATTR_TIMEOUT,
                          entry_timeout=ATTR_TIMEOUT, negative_timeout=ATTR_TIMEOUT,
                          max_threads=FUSE_THREADS, max_idle_threads=FUSE_THREADS)
            except BaseException as exc:  # reported by start() or stop()
                self._error = exc

        # libfuse moves the whole process to / while it sets up (even in the foreground);
        # the caller's working folder is given back once the filesystem answers
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._thread = threading.Thread(target=serve, name="rescue-fuse", daemon=True)
            self._thread.start()
            deadline = time.monotonic() + START_TIMEOUT
            while not self.fs.ready.wait(0.05):
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise DeviceError(_(
                        "The image could not be mounted on {path} with FUSE ({why}).").format(
                            path=self.where, why=self._error or _("libfuse gave up")))
        finally:
            try:
                os.fchdir(cwd)
            finally:
                os.close(cwd)
        self._tune_read_ahead()

    def _tune_read_ahead(self) -> None:
        """Larger read-ahead on the FUSE filesystem's own backing device (best effort: the
        filesystem works without it, more slowly)."""
        try:
            dev = os.stat(self.where).st_dev
            path = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
            with open(path, "w") as f:
                f.write(f"{READ_AHEAD_KB}\n")
        except OSError as exc:
            log.debug("read-ahead of %s left as it is: %s", self.where, exc)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait for the FUSE loop to end (after the unmount); True when it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


def _mfusepy() -> Any:
    # libfuse 3 (the maintained one) even where the legacy libfuse 2 is installed too
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy

    return mfusepy
