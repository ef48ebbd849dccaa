"""Browse an image without restoring it: ``rescue mount``, ``rescue umount``, ``rescue
extract`` (docs/BROWSE.md).

:class:`ImageMount` puts an image on a folder, read-only, in three layers set up in this
order and taken down in the reverse one (also after an error, Ctrl-C or SIGTERM):

1. a FUSE filesystem (:mod:`rescue.engine.imagefs`) on the folder, whose files
   ``parts/p2.img`` are the image's partitions, produced on demand from the repository
   (:mod:`rescue.engine.imageread`);
2. a read-only loop device over each partition file whose filesystem rescue mounts
   (``losetup -r``);
3. that filesystem mounted read-only on ``<folder>/p2`` through :mod:`rescue.sysmount`
   with the registry's options (no journal or log replay).

A ``rescue mount`` records what it set up in a small state file (:func:`state_path`) so
that ``rescue umount`` finds the process that serves the folder, and cleans up after one
that was killed. ``rescue extract`` mounts the same way in a private folder and copies.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rescue import sysmount
from rescue.devices.catalog import kernel_filesystems
from rescue.devices.inroot import resolve_in_root
from rescue.engine.imagefs import PARTS_DIR, FuseServer, ImageFilesystem
from rescue.engine.imageread import DEFAULT_CACHE_BYTES, ChunkCache, RangeReader
from rescue.errors import DeviceError, RescueError, UsageError, from_oserror
from rescue.fs import registry
from rescue.i18n import _
from rescue.image.manifest import METHOD_NONE, Manifest
from rescue.image.repository import RepositoryReader
from rescue.runner import CommandRunner

log = logging.getLogger(__name__)

STATE_DIR = "/run/rescue/mounts"
STOP_TIMEOUT = 60.0  # seconds rescue umount waits for the serving process to clean up


@dataclass
class PartitionView:
    """One partition of a mounted image."""

    name: str  # "p2", "d2p1" with several disks
    disk: int  # 1-based
    number: int
    fstype: str | None
    size: int  # bytes
    file: str  # the partition file
    mounted: str | None = None  # where its filesystem is mounted
    loop: str | None = None
    note: str = ""  # why it is not mounted

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class MountState:
    """What ``rescue umount`` needs to know about a ``rescue mount``."""

    where: str
    pid: int
    image_id: str
    repository: str
    loops: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)


def state_path(where: str | os.PathLike[str]) -> Path:
    key = hashlib.sha256(os.path.realpath(where).encode()).hexdigest()[:24]
    return Path(STATE_DIR) / f"{key}.json"


def log_path(where: str | os.PathLike[str]) -> Path:
    """Where a ``rescue mount --background`` writes what it says (read errors, the end)."""
    return state_path(where).with_suffix(".log")


def _write_state(state: MountState) -> None:
    path = state_path(state.where)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(state), indent=1) + "\n")
        os.replace(tmp, path)
    except OSError as exc:  # umount still finds the mounts below the folder
        log.warning("could not record the mount in %s: %s", path, exc)


def read_state(where: str | os.PathLike[str]) -> MountState | None:
    try:
        raw = json.loads(state_path(where).read_text())
        return MountState(**raw)
    except (OSError, ValueError, TypeError):
        return None


class ImageMount:
    """*manifest*'s image (read from *repo*) mounted on the folder *where* for the
    ``with`` block, see the module docstring. *only*: the names of the partitions whose
    filesystems are mounted (None: every one rescue can mount). *record*: keep a state
    file for ``rescue umount``. *report* receives each read error's sentence."""

    def __init__(self, repo: RepositoryReader, manifest: Manifest,
                 where: str | os.PathLike[str], runner: CommandRunner | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, only: set[str] | None = None,
                 record: bool = False, report: Callable[[str], None] | None = None) -> None:
        self.repo, self.manifest = repo, manifest
        self.where = Path(os.path.abspath(where))
        self.runner = runner or CommandRunner()
        self.only = only
        self.record = record
        self.cache = ChunkCache(repo, cache_bytes)
        self.views: list[PartitionView] = []
        self._report = report
        self._stack = contextlib.ExitStack()
        self._state: MountState | None = None
        self.server: FuseServer | None = None

    # -- set up ---------------------------------------------------------------------

    def __enter__(self) -> ImageMount:
        try:
            self._setup()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def close(self) -> None:
        self._stack.close()

    def _setup(self) -> None:
        where = self.where
        if os.path.islink(where) or not where.is_dir():
            raise UsageError(_("{path} is not a folder; create an empty folder to mount the "
                               "image on.").format(path=where))
        if os.path.ismount(where):
            raise UsageError(_("{path} is already a mount point; choose another folder "
                               "(or 'rescue umount {path}').").format(path=where))
        if any(where.iterdir()):
            raise UsageError(_("{path} is not empty; mount the image on an empty folder."
                               ).format(path=where))
        ahead = ThreadPoolExecutor(max(2, self.repo.parallel_reads * 2),
                                   thread_name_prefix="rescue-readahead")
        self._stack.callback(ahead.shutdown, wait=False, cancel_futures=True)
        files: dict[str, RangeReader] = {}
        several = len(self.manifest.disks) > 1
        for d, disk in enumerate(self.manifest.disks, start=1):
            ss = disk.logical_sector_size
            for p in disk.partitions:
                if p.method == METHOD_NONE:
                    continue  # an MBR extended partition: a container, no bytes of its own
                name = f"d{d}p{p.number}" if several else f"p{p.number}"
                size = p.size * ss
                where_text = _("partition {number} of image {id}").format(
                    number=p.number, id=self.manifest.id)
                files[name + ".img"] = RangeReader(self.repo, p.data, size, self.cache,
                                                   where_text, ahead)
                self.views.append(PartitionView(name, d, p.number, p.filesystem, size,
                                                str(where / PARTS_DIR / f"{name}.img")))
        if not os.path.exists("/dev/fuse"):  # the live system loads it at boot
            self.runner.run(["modprobe", "-q", "fuse"], check=False)
        fs = ImageFilesystem(files, f"rescue:{self.manifest.id}", self._report)
        self.fs = fs
        self.server = FuseServer(fs, str(where))
        self.server.start()
        self._stack.callback(self._stop_fuse)
        if self.record:
            self._state = MountState(str(where), os.getpid(), self.manifest.id,
                                     self.repo.location)
            _write_state(self._state)
            self._stack.callback(lambda: state_path(where).unlink(missing_ok=True))
        for view in self.views:
            if self.only is not None and view.name not in self.only:
                view.note = _("not asked for")
                continue
            self._mount(view)

    def _mountable(self, view: PartitionView) -> str | None:
        """Why *view*'s filesystem is not mounted, or None when it can be."""
        fstype = view.fstype
        traits = registry.traits(fstype)
        if not fstype:
            return _("no filesystem recognised; only its partition file")
        if traits is not None and traits.recreate:
            return _("{fstype}: nothing of it is stored (recreated on restore)").format(
                fstype=fstype)
        if fstype == registry.LVM_PV:
            return _("an LVM physical volume; its logical volumes are not activated")
        if fstype == "crypto_LUKS":
            return _("encrypted (LUKS); open its partition file with cryptsetup --readonly "
                     "to look inside")
        if registry.ro_mount_argv(fstype) is None:
            return _("rescue does not mount {fstype} filesystems").format(fstype=fstype)
        kernel_fs = registry.kernel_filesystem(fstype)
        if kernel_fs not in kernel_filesystems():
            self.runner.run(["modprobe", "-q", registry.kernel_module(fstype)], check=False)
            if kernel_fs not in kernel_filesystems():
                return _("the running kernel cannot mount {fstype}; its partition file is "
                         "there to copy or to open elsewhere").format(fstype=fstype)
        argv = registry.ro_mount_argv(fstype) or []
        if argv and argv[0] != "mount" and shutil.which(argv[0]) is None:
            return _("{program} is not installed").format(program=argv[0])
        return None

    def _mount(self, view: PartitionView) -> None:
        why = self._mountable(view)
        if why is not None:
            view.note = why
            return
        mountpoint = self.where / view.name
        with contextlib.ExitStack() as one:
            # direct I/O: the loop device's reads go straight to the FUSE filesystem, not
            # through a second page cache of the partition file (less memory, ~10% faster)
            res = self.runner.run(["losetup", "-r", "-f", "--show", "--direct-io=on",
                                   view.file], check=False)
            if res.returncode != 0:
                view.note = _("no loop device ({why})").format(
                    why=(res.stderr or res.stdout).strip() or res.returncode)
                return
            loop = res.stdout.strip()
            one.callback(self._detach, loop)
            self.fs.add_folder(view.name)
            one.callback(self.fs.drop_folder, view.name)
            try:
                one.enter_context(sysmount.mounted(loop, view.fstype, mode=sysmount.RO,
                                                   twin=True, runner=self.runner,
                                                   where=mountpoint))
            except sysmount.MountError as exc:
                view.note = _("it could not be mounted read-only ({why})").format(
                    why=exc.detail or exc)
                return
            view.loop, view.mounted = loop, str(mountpoint)
            if self._state is not None:
                self._state.loops.append(loop)
                self._state.mounts.append(str(mountpoint))
                _write_state(self._state)
            self._stack.push(one.pop_all())

    def _detach(self, loop: str) -> None:
        res = self.runner.run(["losetup", "-d", loop], check=False)
        if res.returncode != 0:
            log.warning("could not detach %s: %s", loop, res.stderr.strip())

    def _stop_fuse(self) -> None:
        if self.server is None:
            return
        if self.server.alive:
            sysmount.unmount(self.where, self.runner)
        if not self.server.join(10):
            log.warning("the FUSE filesystem on %s did not stop", self.where)

    # -- while mounted ---------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """False once the FUSE filesystem has gone (unmounted from outside)."""
        return self.server is not None and self.server.alive

    def root_view(self) -> PartitionView | None:
        """The mounted partition that holds the system's root (``/etc/os-release`` or
        ``/etc/fstab``), else the largest mounted one."""
        mounted = [v for v in self.views if v.mounted]
        for view in sorted(mounted, key=lambda v: -v.size):
            assert view.mounted is not None
            for marker in ("etc/os-release", "etc/fstab"):
                found = resolve_in_root(view.mounted, marker)
                if found is not None and os.path.lexists(found):
                    return view
        return max(mounted, key=lambda v: v.size, default=None)


# -- rescue umount --------------------------------------------------------------------


def _mounts_below(where: str) -> list[str]:
    """Mount points at or below *where*, deepest first (from /proc/self/mountinfo)."""
    top = os.path.realpath(where)
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 5:
                continue
            point = _unescape(fields[4])
            if point == top or point.startswith(top.rstrip("/") + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: -p.count("/"))


def _unescape(text: str) -> str:
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def _serving(pid: int) -> bool:
    """Whether *pid* is a running rescue process (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"rescue" in cmdline


def unmount_image(where: str | os.PathLike[str], runner: CommandRunner | None = None,
                  timeout: float = STOP_TIMEOUT) -> bool:
    """Take down the image mounted on *where*: ask the ``rescue mount`` process serving
    it to stop (SIGTERM: it unmounts, detaches and ends), then clean up whatever is left
    (a process that was killed). False when nothing was mounted there."""
    runner = runner or CommandRunner()
    top = os.path.abspath(where)
    state = read_state(top)
    did = False
    if state is not None and state.pid != os.getpid() and _serving(state.pid):
        did = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _serving(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    # what a killed process left: mounts below the folder, its loop devices, the FUSE mount
    leftovers = _mounts_below(top)
    for point in leftovers:
        if point != os.path.realpath(top):
            sysmount.unmount(point, runner)
            did = True
    if state is not None:
        for loop in state.loops:
            backing = _loop_backing(loop)
            if backing is not None and backing.startswith(os.path.realpath(top) + "/"):
                runner.run(["losetup", "-d", loop], check=False)
                did = True
    if os.path.realpath(top) in leftovers:
        sysmount.unmount(top, runner)
        did = True
    state_path(top).unlink(missing_ok=True)
    return did or state is not None


def _loop_backing(loop: str) -> str | None:
    try:
        return Path(f"/sys/block/{os.path.basename(loop)}/loop/backing_file").read_text(
        ).strip()
    except OSError:
        return None


# -- rescue extract -------------------------------------------------------------------


@dataclass
class ExtractResult:
    source: str  # the path inside the image
    partition: str  # its partition's name (p2)
    target: str  # what was written
    files: int
    bytes: int
    elapsed: float


def _inside(path: str, top: str) -> bool:
    path, top = os.path.realpath(path), os.path.realpath(top)
    return path == top or path.startswith(top.rstrip("/") + "/")


def _fuse_image_mounts() -> list[str]:
    """Mount points of images rescue serves (``rescue mount``), from mountinfo."""
    out = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if " - " not in line:
                continue
            after = line.split(" - ", 1)[1].split()
            if after and after[0] == "fuse.rescue":
                out.append(_unescape(fields[4]))
    return out


def _walk(src: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of *src* and of everything below it; links are not followed."""
    info = os.lstat(src)
    yield src, info
    if stat.S_ISDIR(info.st_mode):
        for root, dirs, names in os.walk(src):
            for name in dirs + names:
                full = os.path.join(root, name)
                yield full, os.lstat(full)


def extract(repo: RepositoryReader, manifest: Manifest, path: str,
            to: str | os.PathLike[str], partition: int | None = None,
            overwrite: bool = False, runner: CommandRunner | None = None,
            report: Callable[[str], None] | None = None) -> ExtractResult:
    """Copy *path* (a file or a folder, as the imaged system names it) from the image into
    the folder *to*, keeping owners, modes, times, xattrs and ACLs (where *to*'s
    filesystem keeps them), links and holes. The root filesystem by default, else
    partition number *partition*. Existing files are refused unless *overwrite*."""
    runner = runner or CommandRunner()
    target_dir = os.path.abspath(to)
    for mounted_image in _fuse_image_mounts():
        if _inside(target_dir, mounted_image):
            raise UsageError(_("{path} is inside the mounted image {image}, which is "
                               "read-only; copy to a folder outside it.").format(
                                   path=target_dir, image=mounted_image))
    if os.path.exists(target_dir) and not os.path.isdir(target_dir):
        raise UsageError(_("{path} is not a folder; --to names the folder the copy goes "
                           "into.").format(path=target_dir))
    names = _partition_names(manifest, partition)
    started = time.monotonic()
    with sysmount.private_dir("browse") as top:
        if _inside(target_dir, str(top)):
            raise UsageError(_("{path} is inside the image's own mount; copy to a folder "
                               "outside it.").format(path=target_dir))
        with ImageMount(repo, manifest, top, runner, only=names, report=report) as image:
            view = _chosen(image, partition)
            assert view.mounted is not None
            src = resolve_in_root(view.mounted, path, follow_last=False)
            if src is None or not os.path.lexists(src):
                raise UsageError(_(
                    "{path} is not in partition {number} of image {id} (its root "
                    "filesystem unless --partition says otherwise); 'rescue mount' shows "
                    "what is there.").format(path=path, number=view.number,
                                             id=manifest.id))
            whole = Path(src) == Path(view.mounted)
            base = view.mounted if whole else os.path.dirname(str(src))
            files = size = 0
            existing: list[str] = []
            clashes = 0
            for full, info in _walk(str(src)):  # one pass, nothing kept: any tree size
                if whole and full == str(src):
                    continue
                is_dir = stat.S_ISDIR(info.st_mode)
                files += not is_dir
                size += info.st_size if stat.S_ISREG(info.st_mode) else 0
                there = os.path.join(target_dir, os.path.relpath(full, base))
                if os.path.lexists(there) and not (is_dir and os.path.isdir(there)):
                    clashes += 1
                    if len(existing) < 5:
                        existing.append(os.path.relpath(full, base))
            if clashes and not overwrite:
                shown = ", ".join(existing) + (" ..." if clashes > len(existing) else "")
                raise UsageError(_("{count} file(s) already exist in {path} ({names}); "
                                   "nothing was copied. Add --overwrite to replace them, or "
                                   "choose another folder.").format(
                                       count=clashes, path=target_dir, names=shown))
            os.makedirs(target_dir, exist_ok=True)
            dest = target_dir if whole else os.path.join(target_dir, os.path.basename(
                str(src).rstrip("/")))
            argv = ["cp", "-a", "--sparse=always", "-T"]
            if overwrite:
                argv.append("--remove-destination")
            res = runner.run([*argv, str(src), dest], check=False)
            if res.returncode != 0:
                detail = (res.stderr or res.stdout).strip().splitlines()
                raise DeviceError(_("Copying {path} out of the image failed: {why}").format(
                    path=path, why=detail[-1] if detail else res.returncode))
            if image.fs.read_errors:
                raise DeviceError(_("{count} read(s) of the image failed (damaged or missing "
                                    "chunks, named above); the copy in {path} is "
                                    "incomplete.").format(count=image.fs.read_errors,
                                                          path=dest))
            return ExtractResult(path, view.name, dest, files, size,
                                 time.monotonic() - started)


def _partition_names(manifest: Manifest, number: int | None) -> set[str] | None:
    """The partition views to mount: one (--partition), or all (None) to find the root."""
    if number is None:
        return None
    several = len(manifest.disks) > 1
    for d, disk in enumerate(manifest.disks, start=1):
        for p in disk.partitions:
            if p.number == number:
                return {f"d{d}p{number}" if several else f"p{number}"}
    numbers = ", ".join(str(p.number) for disk in manifest.disks for p in disk.partitions)
    raise UsageError(_("Image {id} has no partition {number}; it has {numbers}.").format(
        id=manifest.id, number=number, numbers=numbers))


def _chosen(image: ImageMount, number: int | None) -> PartitionView:
    if number is not None:
        view = next(v for v in image.views if v.number == number)
        if view.mounted is None:
            raise RescueError(_("Partition {number} of image {id} cannot be opened: "
                                "{why}.").format(number=number, id=image.manifest.id,
                                                 why=view.note))
        return view
    root = image.root_view()
    if root is None:
        raise RescueError(_("No partition of image {id} could be mounted to copy from: "
                            "{why}").format(id=image.manifest.id, why="; ".join(
                                f"{v.name}: {v.note}" for v in image.views)))
    return root


# -- the wizard's "Browse files in a system image": copy marked files out ------------

COPY_BLOCK = 1024 * 1024
#: what a target filesystem may refuse to keep; the copy goes on without it
KEPT_OWNERS, KEPT_MODES, KEPT_XATTRS, KEPT_LINKS, KEPT_SPECIAL = (
    "owners", "permissions", "extended attributes", "symbolic links", "device nodes")


@dataclass
class CopyReport:
    """What :func:`copy_out` did: counts, what failed (first few, with the reason),
    what the target filesystem did not keep, and whether it stopped early."""

    files: int = 0
    folders: int = 0
    bytes: int = 0
    total_bytes: int = 0
    failures: int = 0
    failed: list[str] = field(default_factory=list)  # "path: reason", the first 5
    not_kept: set[str] = field(default_factory=set)  # KEPT_* names
    stopped: str = ""  # why the copy stopped before the end (full, cancelled...)
    cancelled: bool = False


def measure(sources: list[str]) -> tuple[int, int]:
    """(entries, bytes of regular files) of *sources* and everything below them."""
    entries = size = 0
    for src in sources:
        with contextlib.suppress(OSError):
            for _path, info in _walk(src):
                entries += 1
                size += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return entries, size


class _Stop(Exception):
    """The copy cannot go on (the target is full or gone, or it was cancelled)."""


def copy_out(pairs: list[tuple[str, str]],
             progress: Callable[[int, int], None] | None = None,
             cancel: object | None = None) -> CopyReport:
    """Copy each ``(source, destination)`` (a file, link or folder of a mounted image,
    and the path it becomes) keeping owners, permissions, times, extended attributes,
    symbolic and hard links and holes where the destination's filesystem keeps them
    (what it refuses is named in ``not_kept``; the copy goes on). Existing files are
    never replaced (counted as failed). A read error fails that file only; a full or
    read-only destination, or *cancel* (a ``threading.Event``) being set, stops it.
    *progress* gets (bytes done, bytes in all) now and then."""
    report = CopyReport()
    _entries, report.total_bytes = measure([src for src, _dest in pairs])
    links: dict[tuple[int, int], str] = {}
    last = [0.0]

    def tick(force: bool = False) -> None:
        now = time.monotonic()
        if progress is not None and (force or now - last[0] >= 0.1):
            last[0] = now
            progress(report.bytes, report.total_bytes)

    def fail(path: str, why: str) -> None:
        report.failures += 1
        if len(report.failed) < 5:
            report.failed.append(f"{path}: {why}")

    def check_cancel() -> None:
        if cancel is not None and getattr(cancel, "is_set", lambda: False)():
            report.cancelled = True
            raise _Stop(_("the copy was cancelled"))

    def fatal(exc: OSError) -> bool:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENODEV,
                             errno.ENXIO, errno.ESHUTDOWN)

    def metadata(src: str, dest: str, info: os.stat_result) -> None:
        link = stat.S_ISLNK(info.st_mode)
        try:
            os.chown(dest, info.st_uid, info.st_gid, follow_symlinks=False)
        except OSError:
            if not link or info.st_uid or info.st_gid:
                report.not_kept.add(KEPT_OWNERS)
        if not link:
            try:
                os.chmod(dest, stat.S_IMODE(info.st_mode))
                if stat.S_IMODE(os.stat(dest).st_mode) != stat.S_IMODE(info.st_mode):
                    report.not_kept.add(KEPT_MODES)
            except OSError:
                report.not_kept.add(KEPT_MODES)
            with contextlib.suppress(OSError):
                for name in os.listxattr(src, follow_symlinks=False):
                    try:
                        os.setxattr(dest, name, os.getxattr(src, name, follow_symlinks=False),
                                    follow_symlinks=False)
                    except OSError:
                        report.not_kept.add(KEPT_XATTRS)
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)

    def copy_file(src: str, dest: str, info: os.stat_result) -> None:
        key = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and key in links:
            try:
                os.link(links[key], dest)
                report.files += 1
                return
            except OSError:
                pass  # no hard links there: a copy of its own
        fd_in = fd_out = -1
        try:
            fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600)
            pos = 0
            while True:
                check_cancel()
                try:
                    block = os.read(fd_in, COPY_BLOCK)
                except OSError as exc:
                    raise _ReadError(exc) from exc
                if not block:
                    break
                if block.count(0) == len(block):  # a hole: skipped, kept by the truncate
                    os.lseek(fd_out, len(block), os.SEEK_CUR)
                else:
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd_out, view):]
                pos += len(block)
                report.bytes += len(block)
                tick()
            os.ftruncate(fd_out, pos)
        except BaseException:
            if fd_out >= 0:
                os.close(fd_out)
                fd_out = -1
                with contextlib.suppress(OSError):
                    os.unlink(dest)
            raise
        finally:
            if fd_in >= 0:
                os.close(fd_in)
            if fd_out >= 0:
                os.close(fd_out)
        metadata(src, dest, info)
        if info.st_nlink > 1:
            links[key] = dest
        report.files += 1

    def copy_one(src: str, dest: str, info: os.stat_result) -> bool:
        """One entry (not what is below a folder); False when it failed."""
        mode = info.st_mode
        if os.path.lexists(dest) and not (stat.S_ISDIR(mode) and os.path.isdir(dest)
                                          and not os.path.islink(dest)):
            fail(src, _("already there, not replaced"))
            return False
        try:
            if stat.S_ISDIR(mode):
                if not os.path.isdir(dest):
                    os.mkdir(dest, 0o700)
                report.folders += 1
            elif stat.S_ISREG(mode):
                copy_file(src, dest, info)
            elif stat.S_ISLNK(mode):
                try:
                    os.symlink(os.readlink(src), dest)
                except OSError as exc:
                    if fatal(exc):
                        raise
                    report.not_kept.add(KEPT_LINKS)
                    fail(src, _("the destination cannot hold symbolic links"))
                    return False
                metadata(src, dest, info)
                report.files += 1
            else:  # FIFO, device node, socket
                try:
                    if stat.S_ISFIFO(mode):
                        os.mkfifo(dest, stat.S_IMODE(mode))
                    else:
                        os.mknod(dest, mode, info.st_rdev)
                except OSError as exc:
                    if fatal(exc):
                        raise
                    report.not_kept.add(KEPT_SPECIAL)
                    fail(src, _("the destination cannot hold device nodes or FIFOs"))
                    return False
                metadata(src, dest, info)
                report.files += 1
        except _ReadError as exc:
            fail(src, _("read error ({why})").format(why=exc.error.strerror))
            return False
        except OSError as exc:
            if fatal(exc):
                raise _Stop(str(from_oserror(exc, _("Writing {path}").format(
                    path=dest)))) from None
            fail(src, exc.strerror or str(exc))
            return False
        return True

    def copy_tree(src: str, dest: str) -> None:
        try:
            info = os.lstat(src)
        except OSError as exc:
            fail(src, exc.strerror or str(exc))
            return
        check_cancel()
        if not copy_one(src, dest, info):
            return
        if not stat.S_ISDIR(info.st_mode):
            return
        try:
            names = sorted(os.listdir(src))
        except OSError as exc:
            fail(src, _("read error ({why})").format(why=exc.strerror))
            names = []
        for name in names:
            copy_tree(os.path.join(src, name), os.path.join(dest, name))
        metadata(src, dest, info)  # after its content: the folder's times stay

    try:
        for src, dest in pairs:
            parent = os.path.dirname(dest)
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise _Stop(str(from_oserror(exc, _("Writing {path}").format(path=parent))
                                )) from None
            copy_tree(src, dest)
    except _Stop as stop:
        report.stopped = str(stop)
    tick(force=True)
    return report


class _ReadError(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error
