"""Restore onto a smaller disk: a partition planned smaller than its source
(:func:`rescue.plan.restore._shrink`) gets its filesystem made anew with the source's
identity, then its files copied one by one from the image, mounted read-only through
:class:`rescue.engine.browse.ImageMount` (docs/BROWSE.md, docs/FORMAT.md "Restore onto
a smaller disk").

What "the same filesystem" means, per type (the registry's ``rebuild`` names the
function; each reads the source's own superblock from the image's partition file):

* ext2/3/4: ``mkfs.<type> -U uuid -L label -b blocksize -I inodesize -O none,<the
  source's features>``; files by ``rsync -aHAXS --numeric-ids`` (owners, modes,
  timestamps, hard links, ACLs, xattrs, sparse files, device nodes, symlinks).
* xfs: ``mkfs.xfs -m uuid=...,crc,finobt,rmapbt,reflink,bigtime,inobtcount -i
  size,sparse -b size -L label``; files by rsync.
* btrfs: ``mkfs.btrfs -L label -n nodesize -s sectorsize`` with a fresh UUID (the
  kernel cannot know two btrfs of one UUID at once, and the image's is mounted), then,
  the image let go of, ``btrfstune -U`` gives it the source's UUID; every subvolume
  made again at its path (read-only ones set read-only after the copy, the default
  subvolume set again), each copied by rsync without crossing into the others.
  Snapshots become independent subvolumes (their shared extents are copied).
* vfat: ``mkfs.vfat -F <12|16|32> -i <volume id> -n label``; files by mtools (the
  kernel need not mount FAT), attributes and times kept.

Then the filesystem's own read-only check runs on the result.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from rescue import sysmount
from rescue.engine.browse import ImageMount
from rescue.errors import DeviceError, ExternalCommandError, RescueError
from rescue.events import LogMessage, ProgressMeter, Sink, StageFinished, StageStarted, null_sink
from rescue.fs import registry
from rescue.i18n import _
from rescue.image.manifest import Manifest, Partition
from rescue.image.repository import RepositoryReader
from rescue.runner import CommandRunner

RSYNC = ["rsync", "-aHAXS", "--numeric-ids", "--one-file-system"]
#: ext features a new filesystem cannot be made with (states, not choices)
EXT_STATES = {"needs_recovery", "orphan_present", "journal_dev", "snapshot_bitmap"}
TICK_S = 1.0  # how often the copy's progress is measured

MkfsArgv = Callable[[str, Partition, CommandRunner], list[str]]


def _fields(text: str, sep: str = ":") -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if found:
            out.setdefault(key.strip(), value.strip())
    return out


def rebuild_ext(source: str, part: Partition, runner: CommandRunner) -> list[str]:
    info = _fields(runner.run(["dumpe2fs", "-h", source],
                              what=_("Reading the source filesystem")).stdout)
    features = [f for f in info.get("Filesystem features", "").split()
                if f not in EXT_STATES]
    label = info.get("Filesystem volume name", "")
    argv = [f"mkfs.{part.filesystem}", "-F", "-q", "-U", info["Filesystem UUID"],
            "-b", info["Block size"], "-I", info.get("Inode size", "256"),
            "-O", ",".join(["none", *features])]
    if label and label != "<none>":
        argv += ["-L", label]
    return argv


def rebuild_xfs(source: str, part: Partition, runner: CommandRunner) -> list[str]:
    text = runner.run(["xfs_info", source], what=_("Reading the source filesystem")).stdout
    info = dict(re.findall(r"([a-z0-9_-]+)=(\S+?),?(?=\s|$)", text))
    ident = _fields(runner.run(["xfs_db", "-r", "-c", "uuid", "-c", "label", source],
                               what=_("Reading the source filesystem")).stdout, "=")
    meta = [f"uuid={ident['UUID']}", f"crc={info.get('crc', '1')}"]
    if info.get("crc", "1") == "1":
        meta += [f"{k}={info[k]}" for k in ("finobt", "rmapbt", "reflink", "bigtime",
                                            "inobtcount") if k in info]
    inode = [f"size={info.get('isize', '512')}"]
    if "sparse" in info and info.get("crc", "1") == "1":
        inode.append(f"sparse={info['sparse']}")
    data_bsize = re.search(r"^data\s*=\s*bsize=(\d+)", text, re.M)
    argv = ["mkfs.xfs", "-f", "-q", "-m", ",".join(meta), "-i", ",".join(inode)]
    if data_bsize:
        argv += ["-b", f"size={data_bsize.group(1)}"]
    label = ident.get("label", "").strip('"')
    if label:
        argv += ["-L", label]
    return argv


def rebuild_btrfs(source: str, part: Partition, runner: CommandRunner) -> list[str]:
    info = btrfs_super(source, runner)
    # made with a fresh UUID: two btrfs with one fsid cannot be known to the kernel at
    # once (the image's is mounted for the copy); the source's is set afterwards
    argv = ["mkfs.btrfs", "-f", "-q", "-n", info["nodesize"], "-s", info["sectorsize"]]
    label = info.get("label", "")
    if label:
        argv += ["-L", label]
    return argv


def btrfs_super(source: str, runner: CommandRunner) -> dict[str, str]:
    return _fields(runner.run(["btrfs", "inspect-internal", "dump-super", source],
                              what=_("Reading the source filesystem")).stdout, "\t")


def rebuild_vfat(source: str, part: Partition, runner: CommandRunner) -> list[str]:
    bits = {"FAT12": "12", "FAT16": "16", "FAT32": "32"}.get((part.fs_version or "").upper())
    argv = ["mkfs.vfat"]
    if bits:
        argv += ["-F", bits]
    volume = (part.fs_uuid or "").replace("-", "")
    if re.fullmatch(r"[0-9A-Fa-f]{8}", volume):
        argv += ["-i", volume]
    if part.fs_label:
        argv += ["-n", part.fs_label]
    return argv


#: the programs a rebuild of each type runs (besides losetup and mount, always there)
PROGRAMS: dict[str, tuple[str, ...]] = {
    "rebuild_ext": ("dumpe2fs", "rsync"), "rebuild_xfs": ("xfs_info", "xfs_db", "mkfs.xfs",
                                                          "rsync"),
    "rebuild_btrfs": ("btrfs", "mkfs.btrfs", "btrfstune", "rsync"),
    "rebuild_vfat": ("mkfs.vfat", "mcopy"),
}


def check_ready(part: Partition) -> None:
    """Refuse (before anything is written) a rebuild this system cannot carry out: its
    programs, FUSE, the kernel's driver for the type."""
    traits = registry.traits(part.filesystem)
    if traits is None or traits.rebuild is None:
        raise DeviceError(_("Partition {number} ({fstype}) cannot be rebuilt file by file.")
                          .format(number=part.number, fstype=part.filesystem or "-"))
    needed = [*PROGRAMS[traits.rebuild]]
    if traits.rebuild == "rebuild_ext":
        needed.append(f"mkfs.{part.filesystem}")
    missing = [p for p in needed if shutil.which(p) is None]
    if missing:
        raise DeviceError(_(
            "Partition {number} ({fstype}) must be rebuilt to fit the smaller disk, but "
            "{programs} is not installed (make setup installs it; the live system has "
            "it). Nothing was written."
        ).format(number=part.number, fstype=part.filesystem, programs=", ".join(missing)))
    if not os.path.exists("/dev/fuse"):
        raise DeviceError(_(
            "Partition {number} must be rebuilt to fit the smaller disk, which reads the "
            "image through FUSE, but /dev/fuse does not exist (modprobe fuse). Nothing was "
            "written.").format(number=part.number))


BUILDERS: dict[str, MkfsArgv] = {
    "rebuild_ext": rebuild_ext, "rebuild_xfs": rebuild_xfs,
    "rebuild_btrfs": rebuild_btrfs, "rebuild_vfat": rebuild_vfat,
}


def rebuild_partition(repo: RepositoryReader, manifest: Manifest, disk_index: int,
                      number: int, node: str, runner: CommandRunner,
                      sink: Sink = null_sink, cancel: threading.Event | None = None) -> str:
    """Make partition *number*'s filesystem anew on *node* and copy its files from the
    image; returns what was done, as a sentence. Raises :class:`RescueError`."""
    disk = manifest.disks[disk_index]
    part = disk.partition(number)
    traits = registry.traits(part.filesystem)
    if traits is None or traits.rebuild is None:
        raise DeviceError(_("Partition {number} ({fstype}) cannot be rebuilt file by file.")
                          .format(number=number, fstype=part.filesystem or "-"))
    name = f"d{disk_index + 1}p{number}" if len(manifest.disks) > 1 else f"p{number}"
    with contextlib.ExitStack() as stack:
        top = stack.enter_context(sysmount.private_dir("rebuild"))
        (top / "image").mkdir(mode=0o700)
        stack.callback(sysmount.remove_empty_dir, top / "image")
        fat = part.filesystem in registry.FAT_TYPES
        image = stack.enter_context(ImageMount(repo, manifest, top / "image", runner,
                                               only=set() if fat else {name}))
        view = next((v for v in image.views if v.name == name), None)
        if view is None:
            raise DeviceError(_("Image {image} has no partition {number} to copy from.")
                              .format(image=manifest.id, number=number))
        argv = BUILDERS[traits.rebuild](view.file, part, runner)
        late_uuid = btrfs_super(view.file, runner)["fsid"] if traits.rebuild == \
            "rebuild_btrfs" else ""
        runner.run([*argv, node], what=_("Making the {fstype} filesystem of partition "
                                         "{number} anew").format(fstype=part.filesystem,
                                                                 number=number))
        title = _("Copying the files of partition {number} ({fstype}) one by one").format(
            number=number, fstype=part.filesystem)
        if fat:
            _copy_fat(view.file, node, top, runner, sink, title, part.used_bytes)
        else:
            if view.mounted is None:
                raise DeviceError(_(
                    "The {fstype} filesystem of partition {number} in the image cannot be "
                    "read here ({why}); it cannot be copied file by file."
                ).format(fstype=part.filesystem, number=number, why=view.note or "-"))
            dst = stack.enter_context(sysmount.mounted(
                node, part.filesystem, mode=sysmount.RW, runner=runner, purpose="rebuilt"))
            if part.filesystem == "btrfs":
                src = stack.enter_context(sysmount.mounted(
                    str(view.loop), "btrfs", options=("subvolid=5",), runner=runner,
                    purpose="btrfs-top"))
                _copy_btrfs(str(src), str(dst), runner, sink, title, part.used_bytes, cancel)
            else:
                _copy_tree(view.mounted, str(dst), runner, sink, title, part.used_bytes,
                           str(dst), cancel)
    if late_uuid:  # the image is let go of: the new btrfs takes the source's UUID
        runner.run(["btrfs", "device", "scan", "--forget"], check=False)
        runner.run(["btrfstune", "-f", "-U", late_uuid, node],
                   what=_("Giving the rebuilt btrfs its UUID {uuid}").format(uuid=late_uuid))
    check = registry.check_command(part.filesystem)
    if check is not None:
        result = runner.run([*check, node], check=False,
                            what=_("Checking the rebuilt filesystem"))
        if result.returncode != 0:
            raise DeviceError(_(
                "The rebuilt {fstype} filesystem of partition {number} does not pass its "
                "check ({check}): {detail}"
            ).format(fstype=part.filesystem, number=number, check=" ".join(check),
                     detail=(result.stderr or result.stdout).strip()[-300:]))
    return _("partition {number}: {fstype} made anew with the same UUID and label, files "
             "copied one by one").format(number=number, fstype=part.filesystem)


def _used(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _copy_tree(src: str, dst: str, runner: CommandRunner, sink: Sink, title: str,
               expected: int, measure: str, cancel: threading.Event | None,
               extra: tuple[str, ...] = ()) -> None:
    """rsync *src*/ into *dst*/ with everything a system needs kept; progress from the
    target filesystem's used bytes (*measure*), against *expected*."""
    with _progress(sink, title, expected, lambda: _used(measure)):
        try:
            runner.run([*RSYNC, *extra, f"{src.rstrip('/')}/", f"{dst.rstrip('/')}/"],
                       what=title)
        except ExternalCommandError as exc:
            raise DeviceError(_("{what} failed: {error}").format(what=title, error=exc)) \
                from exc
    if cancel is not None and cancel.is_set():
        raise RescueError(_("Cancelled while copying files."))


def _copy_btrfs(src: str, dst: str, runner: CommandRunner, sink: Sink, title: str,
                expected: int, cancel: threading.Event | None) -> None:
    """Every subvolume made again at its path, then each copied without crossing into
    the others; read-only flags and the default subvolume set again afterwards."""
    listed = runner.run(["btrfs", "subvolume", "list", "-a", src],
                        what=_("Listing the btrfs subvolumes")).stdout
    paths = sorted({re.sub(r"^<FS_TREE>/", "", m) for m in
                    re.findall(r" path (.+)$", listed, re.M)}, key=lambda p: p.count("/"))
    for rel in paths:
        target = Path(dst, rel)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            runner.run(["btrfs", "subvolume", "create", str(target)],
                       what=_("Making the btrfs subvolume {path}").format(path=rel))
    read_only = []
    for rel in ["", *paths]:
        _copy_tree(str(Path(src, rel)), str(Path(dst, rel)), runner, sink, title, expected,
                   dst, cancel)
        if rel:
            flag = runner.run(["btrfs", "property", "get", "-ts", str(Path(src, rel)), "ro"],
                              check=False).stdout
            if "ro=true" in flag:
                read_only.append(rel)
    for rel in read_only:
        runner.run(["btrfs", "property", "set", "-ts", str(Path(dst, rel)), "ro", "true"])
    default = runner.run(["btrfs", "subvolume", "get-default", src], check=False).stdout
    found = re.search(r" path (.+)$", default.strip())
    if found and found.group(1) in paths:
        runner.run(["btrfs", "subvolume", "set-default", str(Path(dst, found.group(1)))],
                   what=_("Setting the default btrfs subvolume"))


def _copy_fat(source: str, node: str, top: Path, runner: CommandRunner, sink: Sink,
              title: str, expected: int) -> None:
    """FAT through mtools, both ways (no kernel mount needed): the files of the image's
    partition into a private folder, then onto the new filesystem."""
    staging = top / "fat"
    staging.mkdir(mode=0o700)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    copied = [0]

    def measure() -> int:
        return copied[0]

    try:
        with _progress(sink, title, expected, measure):
            runner.run(["mcopy", "-s", "-p", "-m", "-n", "-Q", "-i", source, "::/*",
                        str(staging)], env=env, what=title, check=False)
            copied[0] = expected // 2
            names = sorted(os.listdir(staging))
            if names:
                runner.run(["mcopy", "-s", "-p", "-m", "-n", "-Q", "-i", node,
                            *(str(staging / n) for n in names), "::/"], env=env, what=title)
            copied[0] = expected
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _progress(sink: Sink, title: str, expected: int, measure: Callable[[], int]
              ) -> Iterator[None]:
    """Progress events of a copy whose advance is read by *measure* every second."""
    meter = ProgressMeter(sink, "rebuild", max(expected, 1))
    sink(StageStarted("rebuild", title, max(expected, 1)))
    start = measure()
    stop = threading.Event()

    def tick() -> None:
        last = 0
        while not stop.wait(TICK_S):
            now = max(0, min(expected, measure() - start))
            if now > last:
                meter.add(now - last)
                last = now

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        sink(StageFinished("rebuild", meter.elapsed, meter.done))
    sink(LogMessage("info", title + ": " + _("done")))
