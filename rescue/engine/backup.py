"""Capture: read a disk's used blocks into the repository as content-addressed chunks.

The source is opened read-only and never written; a disk with a partition mounted
read-write is refused. The image becomes visible (its manifest is published) only after
every chunk is durable, so a failure leaves no half image listed."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rescue import __version__
from rescue.devices.blockdev import partition_node, require_block_device
from rescue.devices.layout import probe_disk
from rescue.devices.mounts import devnum_of, disk_devnums, disk_use, parent_disk_devnum
from rescue.devices.sysinfo import SourceIdentity, read_source_identity
from rescue.engine.pipeline import ordered_map
from rescue.errors import SourceRefusedError, from_oserror
from rescue.events import (
    LogMessage,
    ProgressMeter,
    Sink,
    StageFinished,
    StageStarted,
    human_bytes,
    null_sink,
)
from rescue.fs import btrfs, ext, fat, partclone, regions, registry
from rescue.fs.usedmap import UsedMap
from rescue.hardware.profile import collect_profile
from rescue.i18n import _
from rescue.image import chunks as codec
from rescue.image.index import IndexWriter
from rescue.image.manifest import (
    METHOD_USED_BLOCKS,
    METHOD_WHOLE,
    BootArea,
    ChunkedData,
    Disk,
    Manifest,
)
from rescue.image.repository import RepositoryWriter, new_image_id
from rescue.image.signature import Signer
from rescue.plan import geometry, parttypes
from rescue.runner import CommandRunner


@dataclass
class BackupOptions:
    name: str = ""
    chunk_size: int = codec.DEFAULT_CHUNK_SIZE
    level: int = codec.DEFAULT_LEVEL
    workers: int = max(2, os.cpu_count() or 2)
    #: signs the manifest (``rescue backup --sign KEY``); None: the image is not signed
    signer: Signer | None = None


@dataclass
class SourceDisk:
    """One disk being backed up: its layout and the used map of each data partition."""

    path: str
    layout: Disk
    used: dict[int, UsedMap]  # partition number -> used map (data partitions only)

    @property
    def total_bytes(self) -> int:
        return sum(m.used_bytes for m in self.used.values())


@dataclass
class PreparedBackup:
    sources: list[SourceDisk]  # in the image's order; the first is the system disk
    repo: RepositoryWriter
    identity: SourceIdentity
    options: BackupOptions
    #: what keeps the repository open (a share mounted) until the backup has run
    held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False,
                                       compare=False)

    def close(self) -> None:
        """Let go of the repository (unmount its share); the backup cannot run after."""
        self.held.close()

    @property
    def disk_path(self) -> str:
        return self.sources[0].path

    @property
    def layout(self) -> Disk:
        return self.sources[0].layout

    @property
    def used(self) -> dict[int, UsedMap]:
        return self.sources[0].used

    @property
    def total_bytes(self) -> int:
        return sum(s.total_bytes for s in self.sources)

    def summary_lines(self) -> list[str]:
        lines = [_("Computer {computer}, {os}").format(
            computer=self.identity.computer or _("(unknown)"),
            os=self.identity.os_name or _("unknown OS"))]
        for src in self.sources:
            d = src.layout
            lines.append(_("Source disk {path}: {size}, {table} table").format(
                path=src.path, size=human_bytes(d.size_bytes), table=d.table.upper()))
            for p in d.partitions:
                used = src.used.get(p.number)
                fields = {
                    "number": p.number,
                    "filesystem": (p.filesystem or _("no filesystem"))
                    + (" " + repr(p.fs_label) if p.fs_label else ""),
                    "size": human_bytes(p.size * d.logical_sector_size),
                    "method": p.method,
                }
                if used:
                    line = _("partition {number}: {filesystem}, {size}, {method}, {used} used"
                             ).format(used=human_bytes(used.used_bytes), **fields)
                else:
                    line = _("partition {number}: {filesystem}, {size}, {method}").format(
                        **fields)
                lines.append("  " + line)
                kind = registry.encryption(p.filesystem)
                if kind:
                    lines.append("    " + _(
                        "encrypted ({kind}): copied whole, every byte (its used blocks "
                        "cannot be read without its key)").format(kind=kind))
        lines.append(_("Repository {path}").format(path=self.repo.location))
        if self.options.signer is not None:
            key = self.options.signer.public
            lines.append(_("Signed with key {name} ({fingerprint})").format(
                name=key.name, fingerprint=key.fingerprint))
        return lines


@dataclass
class BackupResult:
    manifest: Manifest
    new_raw_bytes: int = 0
    new_stored_bytes: int = 0
    reused_bytes: int = 0
    zero_bytes: int = 0
    elapsed: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)


def prepare_backup(
    disks: str | list[str], repo: RepositoryWriter, options: BackupOptions,
    runner: CommandRunner,
) -> PreparedBackup:
    """Every check that can refuse a backup, and the read-only probe of the source
    disk(s). Several disks make one image; the first is the system disk (its bus and
    drivers are recorded as the boot disk's). *repo* is open for writing
    (``rescue.repo.open_repository(location, write=True)``; ``rescue.services``
    opens it from a location)."""
    paths = [disks] if isinstance(disks, str) else list(disks)
    if not paths:
        raise SourceRefusedError(_("No disk to back up was given."))
    real = [os.path.realpath(p) for p in paths]
    twice = sorted({p for p, r in zip(paths, real, strict=True) if real.count(r) > 1})
    if twice:
        raise SourceRefusedError(_(
            "{disks} is given more than once; name each disk to back up once."
        ).format(disks=", ".join(twice)))
    sources = [_probe_source(p, repo, runner) for p in paths]
    identity = SourceIdentity()
    for src in sources:
        nodes = {p.number: partition_node(src.path, p.number) for p in src.layout.partitions}
        found = read_source_identity(src.layout, nodes, runner)
        if found.computer or found.os_name:
            identity = found
            break
    return PreparedBackup(sources, repo, identity, options)


def _probe_source(disk: str, repo: RepositoryWriter, runner: CommandRunner) -> SourceDisk:
    require_block_device(disk)
    use = disk_use(disk)
    rw = [m for m in use.mounts if m.read_write]
    if rw:
        where = ", ".join(_("{device} on {mountpoint}").format(
            device=m.source, mountpoint=m.mountpoint) for m in rw)
        raise SourceRefusedError(_(
            "{disk} has a partition mounted read-write ({where}); the image would be "
            "inconsistent. Unmount it (or boot the rescue system) and retry."
        ).format(disk=disk, where=where))
    # Make the kernel list the partitions (no disk write; loop devices need it).
    runner.run(["partx", "-u", disk], check=False)
    runner.run(["udevadm", "settle", "--timeout=10"], check=False)
    layout = probe_disk(disk, runner)
    # a repository elsewhere (no local folder) is on no disk of this machine
    repo_disk = None if repo.local_folder is None else parent_disk_devnum(
        os.stat(repo.local_folder).st_dev)
    if repo_disk is not None and repo_disk in (*disk_devnums(disk), devnum_of(disk)):
        raise SourceRefusedError(_(
            "The repository {repo} is on {disk}, the disk being backed up; "
            "choose a repository on another disk."
        ).format(repo=repo.location, disk=disk))
    nodes = {p.number: partition_node(disk, p.number) for p in layout.partitions}
    used: dict[int, UsedMap] = {}
    fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for p in layout.partitions:
            length = p.size * layout.logical_sector_size
            offset = p.start * layout.logical_sector_size
            if p.method == METHOD_USED_BLOCKS:
                source = registry.traits(p.filesystem)
                if source is not None and source.used_blocks == registry.DUMPE2FS:
                    found = ext.used_map(nodes[p.number], length, runner)
                elif source is not None and source.used_blocks == registry.BTRFS_PROGS:
                    found = btrfs.used_map(nodes[p.number], length, runner)
                elif partclone.supported(p.filesystem):
                    found = partclone.used_map(
                        str(p.filesystem), nodes[p.number], length, runner)
                else:
                    found = fat.used_map_from_device(fd, offset, length)
                # and what the filesystem keeps outside its allocation map
                extras = regions.extra_ranges(p.filesystem, fd, offset, length)
                used[p.number] = UsedMap.from_ranges(length, found.ranges + extras)
            elif p.method == METHOD_WHOLE:
                used[p.number] = UsedMap.whole(length)
    finally:
        os.close(fd)
    for p in layout.partitions:
        if p.number in used:
            p.used_bytes = used[p.number].used_bytes
    return SourceDisk(disk, layout, used)


class _Capture:
    """Reads chunks of one byte range, blanks unused bytes, stores new chunks."""

    def __init__(self, fd: int, repo: RepositoryWriter, level: int) -> None:
        self.fd, self.repo, self.level = fd, repo, level
        self.lock = threading.Lock()
        self.new_raw = self.new_stored = self.reused = self.zero = 0

    def chunk(self, offset: int, length: int, keep: list[tuple[int, int]] | None) -> str | None:
        """Return the chunk's hash, or None when it is all zero. *keep*: byte ranges
        (relative to the chunk) that hold data; everything else is blanked."""
        try:
            data = os.pread(self.fd, length, offset)
        except OSError as exc:
            raise from_oserror(exc, _("Reading the source disk at byte {offset}").format(
                offset=offset)) from exc
        if len(data) != length:
            raise SourceRefusedError(_("The source disk ended early at byte {offset}.").format(
                offset=offset + len(data)))
        if keep is not None:
            buf = bytearray(length)
            view = memoryview(buf)
            for s, e in keep:
                view[s:e] = data[s:e]
            data = bytes(buf)
        if codec.is_zero(data):
            with self.lock:
                self.zero += length
            return None
        digest = codec.chunk_hash(data)
        if self.repo.has_chunk(digest):
            with self.lock:
                self.reused += length
            return digest
        blob = codec.compress(data, self.level)
        if self.repo.put_chunk(digest, blob):
            with self.lock:
                self.new_raw += length
                self.new_stored += len(blob)
        else:
            with self.lock:
                self.reused += length
        return digest

    def store_part(self, raw: bytes) -> str:
        """Keep a finished index part in the repository like a chunk; its BLAKE3."""
        digest = codec.chunk_hash(raw)
        blob = codec.compress(raw, self.level)
        if self.repo.put_chunk(digest, blob):
            with self.lock:
                self.new_stored += len(blob)
        return digest


def _capture_range(
    cap: _Capture,
    base: int,
    used: UsedMap,
    chunk_size: int,
    workers: int,
    meter: ProgressMeter,
    cancel: threading.Event | None,
) -> ChunkedData:
    data = ChunkedData(length=used.length, chunk_size=chunk_size)
    index = IndexWriter(used.length, chunk_size, cap.store_part)
    full = used.ranges == [(0, used.length)]

    def job(index: int) -> str | None:
        start, length = data.chunk_span(index)
        keep = None
        if not full:
            overlaps = used.overlaps(start, start + length)
            if overlaps != [(start, start + length)]:
                keep = [(s - start, e - start) for s, e in overlaps]
        return cap.chunk(base + start, length, keep)

    for number, digest in ordered_map(
        job, used.chunks_touched(chunk_size), workers, workers * 3, cancel
    ):
        span = data.chunk_span(number)[1]
        index.add(number, digest)
        meter.add(min(span, sum(e - s for s, e in used.overlaps(number * chunk_size,
                                                               number * chunk_size + span))))
    data.parts = index.finish()
    return data


def _boot_areas(layout: Disk) -> list[tuple[str, int, int]]:
    ss = layout.logical_sector_size
    first = min((p.start for p in layout.partitions), default=0) * ss
    areas = [("mbr-boot-code", 0, 440)]
    # GPT: from the first usable LBA, but never inside the entry array rescue writes (a
    # source table with fewer than 128 entries leaves table territory there)
    gap_start = ss if layout.table == "dos" else max(
        layout.first_lba or 0, geometry.first_usable("gpt", ss)) * ss
    if first > gap_start:
        areas.append(("post-mbr-gap", gap_start, first - gap_start))
    return areas


def run_backup(
    prepared: PreparedBackup,
    sink: Sink = null_sink,
    cancel: threading.Event | None = None,
    now: datetime | None = None,
) -> BackupResult:
    opts = prepared.options
    repo = prepared.repo
    cs = opts.chunk_size
    now = now or datetime.now(UTC)
    try:
        zone = prepared.identity.timezone
        local = now.astimezone(ZoneInfo(zone)) if zone else now.astimezone()
    except (KeyError, ValueError):
        local = now.astimezone()
    repo.start_image()
    cap = _Capture(-1, repo, opts.level)
    total = prepared.total_bytes + sum(
        n for src in prepared.sources for _name, _start, n in _boot_areas(src.layout))
    meter = ProgressMeter(sink, "backup", total)
    names = ", ".join(src.path for src in prepared.sources)
    sink(StageStarted("backup", _("Backing up {disk} ({size} of used data)").format(
        disk=names, size=human_bytes(total)), total))
    for src in prepared.sources:
        layout = src.layout
        cap.fd = os.open(src.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            layout.boot_areas = []
            for name, offset, length in _boot_areas(layout):
                used = UsedMap.whole(length)
                data = _capture_range(cap, offset, used, cs, opts.workers, meter, cancel)
                layout.boot_areas.append(BootArea(name, offset, data))
            for p in layout.partitions:
                if p.number not in src.used:
                    continue
                used = src.used[p.number]
                base = p.start * layout.logical_sector_size
                p.data = _capture_range(cap, base, used, cs, opts.workers, meter, cancel)
        finally:
            os.close(cap.fd)
    sink(StageFinished("backup", meter.elapsed, meter.done))
    stats = {
        "new_raw_bytes": cap.new_raw,
        "new_stored_bytes": cap.new_stored,
        "reused_bytes": cap.reused,
        "zero_bytes": cap.zero,
        "elapsed_ms": int(meter.elapsed * 1000),
    }
    identity = prepared.identity
    manifest = Manifest(
        id=new_image_id(now, repo.image_ids()),
        # a manifest field: English, as every field of the format
        name=opts.name or f"Backup of {identity.computer or prepared.disk_path}",
        created_utc=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        created_local=local.isoformat(timespec="seconds"),
        timezone=identity.timezone,
        computer=identity.computer,
        os_name=identity.os_name,
        os_id=identity.os_id,
        os_version=identity.os_version,
        firmware=_source_firmware([src.layout for src in prepared.sources]),
        hardware=collect_profile(boot_disk=_profile_boot_disk(prepared.disk_path)).to_dict(),
        chunk_size=cs,
        compression="zstd",
        disks=[src.layout for src in prepared.sources],
        stats=stats,
        tool_version=__version__,
    )
    repo.sync()
    repo.write_manifest(manifest, signer=opts.signer)
    if not repo.seal_image(manifest.id):
        sink(LogMessage("warning", _(
            "Could not record in {repo} that image {image} is complete (seal.json); a "
            "restore of it will look up each of its chunks first, which takes longer."
        ).format(repo=repo.location, image=manifest.id)))
    sink(LogMessage("info", _(
        "Image {image}: {new} new data stored as {stored}, {reused} reused from earlier images."
    ).format(image=manifest.id, new=human_bytes(cap.new_raw),
             stored=human_bytes(cap.new_stored), reused=human_bytes(cap.reused))))
    return BackupResult(manifest, cap.new_raw, cap.new_stored, cap.reused, cap.zero,
                        meter.elapsed, stats)


def _profile_boot_disk(disk: str) -> str | None:
    """The disk whose bus and drivers the profile records as the system disk: the disk
    being backed up, unless it is a loop device (tests, demos), which stands for no bus."""
    return None if os.path.basename(os.path.realpath(disk)).startswith("loop") else disk


def _source_firmware(layouts: list[Disk]) -> str:
    """How the source machine boots, judged from its disks' layouts: an ESP means UEFI."""
    for layout in layouts:
        for p in layout.partitions:
            if parttypes.is_esp(p.type):
                return "uefi"
    return "bios"
