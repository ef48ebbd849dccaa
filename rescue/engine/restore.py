"""Restore: carry out a RestorePlan. Checks that can refuse run first (preflight);
then the old signatures are wiped, the table written, and the chunks streamed
(read, decompress and verify in worker threads; write in order on this thread)."""

from __future__ import annotations

import heapq
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from rescue.devices.blockdev import device_facts
from rescue.devices.mounts import disk_use
from rescue.devices.target import fd_identity, identity_changes, target_roles
from rescue.engine import grow, rebuild
from rescue.engine import partition as pt
from rescue.engine.blockio import BlockTarget, claim_exclusive, lock_whole_disk
from rescue.engine.bootfix import FixupContext, run_fixups
from rescue.engine.pipeline import ordered_map
from rescue.errors import Cancelled, ImageCorruptError, RescueError, TargetRefusedError
from rescue.events import (
    LogMessage,
    ProgressMeter,
    Sink,
    StageFinished,
    StageStarted,
    human_bytes,
    null_sink,
)
from rescue.fs import bootsector, registry
from rescue.i18n import _
from rescue.image import chunks as codec
from rescue.image.index import IndexPart, decode_part
from rescue.image.manifest import METHOD_RECREATE, ChunkedData, Disk, Manifest, PartFetcher
from rescue.image.repository import RepositoryReader
from rescue.plan.restore import RestorePlan, check_target
from rescue.runner import CommandRunner

DECODE_WORKERS = 2
DEPTH = 8  # chunks in flight: bounds memory to a few tens of MiB
ZERO_JOB = 256 * 1024 * 1024  # the most one zeroing call covers (a run is cut into these)
ZERO_READ = 4 * 1024 * 1024  # reading a zero run back: this much at a time
ASK_EACH_LIMIT = 20_000  # chunks asked about one by one when a server lists nothing
SEAL_SAMPLE = 64  # chunks of a sealed image looked up all the same
SEAL_PARTS = 4  # index parts they are drawn from


def _reads_zero(target: BlockTarget, offset: int, length: int) -> bool:
    """Whether the target reads zero over [offset, offset+length), read a slice at a
    time (a zero run may be hundreds of MiB)."""
    for start in range(offset, offset + length, ZERO_READ):
        size = min(ZERO_READ, offset + length - start)
        data = target.pread(size, start)
        if len(data) != size or not codec.is_zero(data):
            return False
    return True


@dataclass(frozen=True)
class WriteJob:
    """One chunk to bring to the target: stored (digest) or zero (digest None)."""

    offset: int  # absolute byte offset on the target
    length: int
    digest: str | None
    where: str  # "image X, partition 2, offset 123" for error sentences


@dataclass
class StepResult:
    name: str
    status: str  # "done" | "skipped" | "failed"
    detail: str = ""


@dataclass
class RestoreReport:
    image_id: str
    target: str
    started_utc: str
    result: str = "running"  # "ok" | "failed" | "cancelled"
    error: str = ""
    elapsed: float = 0.0
    bytes_written: int = 0
    bytes_skipped: int = 0  # delta restore: chunks the target already held
    warnings: list[str] = field(default_factory=list)  # e.g. a boot fix-up that failed
    boot_fixups_failed: bool = False  # a warning above may keep the machine from booting
    throughput: float = 0.0
    verified: bool | None = None
    steps: list[StepResult] = field(default_factory=list)
    partitions: dict[int, str] = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    compatibility: dict = field(default_factory=dict)
    disks: list[dict] = field(default_factory=list)  # multi-disk: each disk's own report

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def write_jobs(manifest: Manifest, plan: RestorePlan,
               fetch: PartFetcher | None = None) -> Iterator[WriteJob]:
    """Every chunk of the plan's disk of the image, in target order, streamed: one index
    part in memory at a time (*fetch* reads a part from the repository). A zero run is
    one job (up to :data:`ZERO_JOB` bytes), not one per chunk."""
    disk = manifest.disks[plan.disk_index]
    which = plan.disk_index + 1 if plan.disk_count > 1 else 0  # named only when several

    def no_fetch(part: IndexPart) -> bytes:
        raise ValueError("an index part is needed but no repository was given")

    def jobs(base: int, data: ChunkedData, place: dict[str, Any]) -> Iterator[WriteJob]:
        per_zero_job = max(1, ZERO_JOB // data.chunk_size)
        for entry in data.entries(fetch or no_fetch):
            if entry.digest is not None:
                start, length = data.chunk_span(entry.index)
                yield WriteJob(base + start, length, entry.digest,
                               chunk_place(manifest.id, start, disk=which, **place))
                continue
            for first in range(entry.index, entry.index + entry.count, per_zero_job):
                count = min(per_zero_job, entry.index + entry.count - first)
                start = first * data.chunk_size
                yield WriteJob(base + start, data.run_bytes(first, count), None,
                               chunk_place(manifest.id, start, disk=which, **place))

    sources = [jobs(area.offset, area.data, {"area": area.name}) for area in disk.boot_areas]
    for pp in plan.partitions:
        src = disk.partition(pp.number)
        if src.data is not None and not pp.rebuild:  # a rebuilt one gets files, not blocks
            sources.append(jobs(pp.start * plan.sector_size, src.data,
                                {"partition": pp.number}))
    return heapq.merge(*sources, key=lambda j: j.offset)


def plan_bytes(manifest: Manifest, plan: RestorePlan) -> int:
    """Bytes :func:`write_jobs` brings to the target, from the image header alone."""
    disk = manifest.disks[plan.disk_index]
    ranges = [a.data for a in disk.boot_areas] + [
        d for d in (disk.partition(pp.number).data for pp in plan.partitions
                    if not pp.rebuild) if d]
    return sum(d.stored_chunk_bytes + d.zero_bytes for d in ranges)


def part_fetcher(repo: RepositoryReader, manifest: Manifest) -> PartFetcher:
    def fetch(part: IndexPart) -> bytes:
        return repo.read_part(part, _("Image {image}, chunk index").format(image=manifest.id))
    return fetch


def chunk_place(image: str, offset: int, area: str = "", partition: int = 0,
                disk: int = 0) -> str:
    """Where a chunk belongs, for error sentences: "Image X, partition 2, offset 123";
    *disk* (1-based) names the image's disk when it holds several."""
    if disk:
        if area:
            return _("Image {image}, disk {disk}, boot area {area}, offset {offset}").format(
                image=image, disk=disk, area=area, offset=offset)
        return _("Image {image}, disk {disk}, partition {number}, offset {offset}").format(
            image=image, disk=disk, number=partition, offset=offset)
    if area:
        return _("Image {image}, boot area {area}, offset {offset}").format(
            image=image, area=area, offset=offset)
    return _("Image {image}, partition {number}, offset {offset}").format(
        image=image, number=partition, offset=offset)


def check_chunks_present(repo: RepositoryReader, manifest: Manifest,
                         disk_index: int | None = None, sink: Sink = null_sink) -> int:
    """Refuse when a chunk of the image (of its disk *disk_index* only) is missing, before
    anything is written. Presence is looked up once per repository, not once per chunk:
    the index parts (one look each), then every listed chunk against one listing per
    chunk folder (:meth:`RepositoryReader.chunk_inventory`). A web server that lists no
    folders is asked chunk by chunk only for images of up to :data:`ASK_EACH_LIMIT`
    chunks; for a larger one a missing chunk is found as the restore reaches it, which
    stops before writing it. Returns the number of chunks listed."""
    parts = manifest.index_parts(disk_index)
    missing = repo.missing_chunks(sorted({p.blake3 for p in parts}))
    if missing:
        raise ImageCorruptError(_(
            "Image {image}: {count} part(s) of its chunk index are missing or empty in {repo} "
            "(first: {first}); the image cannot be restored."
        ).format(image=manifest.id, count=len(missing), repo=repo.location,
                 first=missing[0][:16]))
    fetch = part_fetcher(repo, manifest)
    if manifest.id in repo.sealed_images():
        _check_sample(repo, manifest, disk_index, fetch, parts)
        sink(LogMessage("info", _(
            "Image {image}: the seal of {repo} vouches that all its chunks are there (it "
            "was complete when its backup ended, and no chunk was added or removed "
            "since); {sample} of them were looked up to confirm."
        ).format(image=manifest.id, repo=repo.location, sample=SEAL_SAMPLE)))
        return manifest.stored_chunks
    inventory = repo.chunk_inventory()
    count, first = 0, ""  # chunks missing, the first name (every name could be millions)
    if inventory is not None:
        for _place, data in manifest.ranges(disk_index):
            for keys in data.stored_key_batches(fetch):
                lost = [f"{key:016x}" for key in keys if not inventory.has_key(key)]
                if lost:
                    count += len(lost)
                    first = min([first, *lost] if first else lost)
    elif manifest.stored_chunks <= ASK_EACH_LIMIT:
        absent = repo.missing_chunks(sorted({
            e.digest for _place, data in manifest.ranges(disk_index)
            for e in data.entries(fetch) if e.digest is not None}))
        count, first = len(absent), min(absent, default="")
    else:
        sink(LogMessage("warning", _(
            "{repo} does not list its folders, so the presence of the {count} chunks of "
            "image {image} is checked as they are read; a missing one stops the restore "
            "before it is written."
        ).format(repo=repo.location, count=manifest.stored_chunks, image=manifest.id)))
    if count:
        raise ImageCorruptError(_(
            "Image {image}: {count} chunk(s) are missing or empty in {repo} (first: {first}); "
            "the image cannot be restored."
        ).format(image=manifest.id, count=count, repo=repo.location, first=first[:16]))
    return manifest.stored_chunks


def _check_sample(repo: RepositoryReader, manifest: Manifest, disk_index: int | None,
                  fetch: PartFetcher, parts: list[IndexPart]) -> None:
    """Look up :data:`SEAL_SAMPLE` stored chunks of the image, from up to
    :data:`SEAL_PARTS` index parts picked at random (a format-1 image: from its inline
    list): a seal copied along with
    a repository whose chunks were not all copied is caught here, before anything is
    written, in all but the rarest cases."""
    stored = [p for p in parts if p.stored]
    if stored:
        digests = {e.digest for part in random.sample(stored, min(SEAL_PARTS, len(stored)))
                   for e in decode_part(fetch(part), part, part.name) if e.digest is not None}
    else:
        digests = {h for _place, data in manifest.ranges(disk_index) for _i, h in data.chunks}
    sample = random.sample(sorted(digests), min(SEAL_SAMPLE, len(digests)))
    missing = repo.missing_chunks(sorted(sample))
    if missing:
        raise ImageCorruptError(_(
            "Image {image}: chunk {first} is missing or empty in {repo}, although the "
            "repository's seal says the image is complete (was the repository copied "
            "without all its chunks?); the image cannot be restored."
        ).format(image=manifest.id, first=missing[0][:16], repo=repo.location))


def verify_image(repo: RepositoryReader, manifest: Manifest, sink: Sink = null_sink,
                 cancel: threading.Event | None = None) -> int:
    """Re-hash every chunk of an image (every disk) without a target, streamed one index
    part at a time. Returns bytes checked."""
    fetch = part_fetcher(repo, manifest)

    def items() -> Iterator[tuple[str, int, str]]:
        for place, data in manifest.ranges():
            for entry in data.entries(fetch):
                if entry.digest is not None:
                    start, length = data.chunk_span(entry.index)
                    yield entry.digest, length, chunk_place(manifest.id, start, **place)

    total = sum(data.stored_chunk_bytes for _place, data in manifest.ranges())
    meter = ProgressMeter(sink, "verify-image", total)
    sink(StageStarted("verify-image", _("Verifying image {image} ({size})").format(
        image=manifest.id, size=human_bytes(total)), total))

    def check(item: tuple[str, int, str]) -> int:
        digest, length, where = item
        codec.decode_chunk(digest, repo.read_chunk(digest, where), length, where)
        return length

    for _item, n in ordered_map(check, items(), max(DECODE_WORKERS, repo.parallel_reads),
                                DEPTH, cancel):
        meter.add(n)
    sink(StageFinished("verify-image", meter.elapsed, meter.done))
    return total


class Restorer:
    def __init__(self, repo: RepositoryReader, manifest: Manifest, plan: RestorePlan,
                 runner: CommandRunner, sink: Sink = null_sink,
                 cancel: threading.Event | None = None,
                 target_factory: type[BlockTarget] = BlockTarget,
                 report_path: str | None = None, chunks_checked: bool = False) -> None:
        """*chunks_checked*: the image's chunks were found present when it was prepared
        (rescue.services.prepare_restore); the preflight does not look again."""
        self.repo, self.manifest, self.plan = repo, manifest, plan
        self.chunks_checked = chunks_checked
        self.runner, self.sink, self.cancel = runner, sink, cancel
        self.target_factory = target_factory
        self.report_path = report_path
        self.disk: Disk = manifest.disks[plan.disk_index]
        # the target disk, open from the preflight to the end of the restore: with O_EXCL
        # while the restore writes the disk itself (signatures, table, data), then without
        # it while the swap, growth and boot fix-ups claim its partitions (see _share_disk)
        self._disk_fd = -1
        self._exclusive = False
        # the disk's BSD lock, from the preflight until its partitions are written, swap
        # recreated and filesystems grown: udev leaves the disk alone meanwhile
        self._lock_fd = -1
        self.report = RestoreReport(
            image_id=manifest.id, target=plan.target.path,
            started_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            plan=plan.to_dict(), compatibility=dict(plan.compatibility),
        )

    # -- checks before the first write ----------------------------------------------

    def preflight(self) -> None:
        t = self.plan.target
        check_target(t)  # a partition, the boot medium, ... (a plan made by hand)
        facts = device_facts(t.path)
        if int(facts["size_bytes"]) != t.size_bytes:
            raise TargetRefusedError(_(
                "{path} changed since the plan was made (size {size} bytes, planned for "
                "{planned}); was a disk swapped? Start again."
            ).format(path=t.path, size=facts["size_bytes"], planned=t.size_bytes))
        if facts["read_only"]:
            raise TargetRefusedError(_("{path} is read-only (write-protected).").format(
                path=t.path))
        use = disk_use(t.path)
        if use.busy:
            raise TargetRefusedError(_(
                "{path} is in use: {why}. Unmount it first; nothing was written."
            ).format(path=t.path, why=use.describe()))
        if self._lock_fd < 0:
            self._lock_fd = lock_whole_disk(t.path)
        self._claim_disk()
        # the chunks of the disk about to be written, unless the preparation checked the
        # whole image already
        if not self.chunks_checked:
            check_chunks_present(self.repo, self.manifest, self.plan.disk_index, self.sink)
        for pp in self.plan.partitions:
            if pp.rebuild:  # its tools are here before anything is written
                rebuild.check_ready(self.disk.partition(pp.number))
        if self.plan.options.verify_first:
            verify_image(self.repo, self.manifest, self.sink, self.cancel)
        self._step("check-target", "done", f"{t.path}: {human_bytes(t.size_bytes)}, not in use")

    def _claim_disk(self) -> None:
        """Open the target with O_EXCL (kept open until the end of the restore), then
        check that the device open is the disk the plan was made for (device number,
        size, disk sequence number, WWN, serial: read through the descriptor) and that it
        is still neither the boot medium nor the disk holding the repository."""
        t = self.plan.target
        self._release_disk()
        fd = claim_exclusive(t.path)
        try:
            changes = identity_changes(t, fd_identity(fd))
            if changes:
                raise TargetRefusedError(_(
                    "{path} is not the disk the restore was planned for ({changes}); was a "
                    "disk swapped or attached again? Nothing was written; start again."
                ).format(path=t.path, changes="; ".join(changes)))
            is_boot, holds_repo = target_roles(t.path, self.repo.local_folder)
            check_target(replace(t, is_boot_medium=is_boot, holds_repository=holds_repo))
        except BaseException:
            os.close(fd)
            raise
        self._disk_fd, self._exclusive = fd, True

    def _share_disk(self) -> None:
        """Let the partitions be claimed (mkswap, growing, the boot fix-ups' mounts open
        them with O_EXCL, which the disk's own O_EXCL would refuse): the disk stays open,
        without O_EXCL, so it cannot be swapped under the restore (a loop device cannot
        be attached to another file while it is open)."""
        if not self._exclusive:
            return
        shared = os.open(f"/proc/self/fd/{self._disk_fd}", os.O_RDONLY | os.O_CLOEXEC)
        os.close(self._disk_fd)
        self._disk_fd, self._exclusive = shared, False

    def _release_disk(self) -> None:
        if self._disk_fd >= 0:
            os.close(self._disk_fd)
        self._disk_fd, self._exclusive = -1, False

    def _unlock_disk(self, settle: bool = True) -> None:
        """Let udev see the disk again and (*settle*) wait until it has caught up (the
        boot fix-ups look the partitions up by UUID)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
            if settle:
                self.runner.run(["udevadm", "settle", "--timeout=30"], check=False)

    def _relock_disk(self) -> None:
        """Take the disk's lock again after the table is written. Something else holding
        it for 30 s by now is no reason to stop a restore half done: it goes on without
        (as before the lock existed), and says so in the report."""
        try:
            self._lock_fd = lock_whole_disk(self.plan.target.path)
        except TargetRefusedError as exc:
            self._step("lock-disk", "skipped", str(exc))

    # -- the restore ------------------------------------------------------------------

    def run(self) -> RestoreReport:
        start = time.monotonic()
        try:
            self.preflight()
            if self.plan.reuse_table:
                self._step("keep-partition-table", "done", "the target already has this layout")
            else:
                self._prepare_disk()
            # no node is needed for an MBR extended partition (nothing is written through
            # it), and partx cannot add its 1 KiB node on a disk of 4096-byte sectors
            nodes = pt.tell_kernel(self.plan.target.path,
                                   [p.number for p in self.plan.partitions
                                    if p.kind != "extended"], self.runner,
                                   settle=self._lock_fd < 0)
            self.report.partitions = nodes
            if not self.plan.reuse_table:
                for pp in self.plan.partitions:
                    if pp.kind != "extended":
                        # --force: our own O_EXCL on the disk would refuse wipefs's
                        self.runner.run(["wipefs", "-a", "-f", "-q", nodes[pp.number]],
                                        check=False)
            self._write_data()
            self._fix_start_fields()
            self._share_disk()
            self._recreate_swap(nodes)
            self._rebuild(nodes)
            self._grow(nodes)
            self._unlock_disk()
            self._fixups(nodes)
            self.report.result = "ok"
        except (Cancelled, KeyboardInterrupt):
            self.report.result = "cancelled"
            self.report.error = _(
                "The restore was cancelled; the target disk is incomplete and will not boot. "
                "Run the restore again (with --resume to keep what is already written)."
            )
            raise Cancelled(self.report.error) from None
        except RescueError as exc:
            self.report.result = "failed"
            self.report.error = str(exc)
            raise
        finally:
            self._release_disk()
            self._unlock_disk(settle=False)
            self.report.elapsed = time.monotonic() - start
            if self.report_path:
                with open(self.report_path, "w") as f:
                    f.write(self.report.to_json())
        return self.report

    def _prepare_disk(self) -> None:
        path = self.plan.target.path
        pt.forget_partitions(path, self.runner)
        # --force: wipefs opens with O_EXCL, which the restore's own claim would refuse
        self.runner.run(["wipefs", "-a", "-f", "-q", path],
                        what=_("Wiping old signatures on {path}").format(path=path))
        self._step("wipe-signatures", "done")
        # libparted waits for udev after writing the table (udevadm settle, 120 s by
        # default), and udev waits for the disk's lock: the table is written without it,
        # and the lock taken again for the data, swap and growth
        self._unlock_disk(settle=False)
        pt.write_table(self.plan, self.disk, self.runner)
        self._relock_disk()
        self._step("write-partition-table", "done",
                   f"{self.plan.table.upper()} {self.plan.disk_id}, "
                   f"{len(self.plan.partitions)} partitions")

    def _held_fd(self) -> int | None:
        """The disk as the preflight opened it (O_EXCL, read-write), None before."""
        return self._disk_fd if self._exclusive else None

    def _decode(self, job: WriteJob) -> bytes | None:
        if job.digest is None:
            return None
        blob = self.repo.read_chunk(job.digest, job.where)
        return codec.decode_chunk(job.digest, blob, job.length, job.where)

    def _already_there(self, target: BlockTarget, job: WriteJob) -> bool:
        """Delta restore: does the target hold this chunk's bytes already?"""
        if job.digest is None:
            return _reads_zero(target, job.offset, job.length)
        current = target.pread(job.length, job.offset)
        return len(current) == job.length and codec.chunk_hash(current) == job.digest

    def _jobs(self) -> Iterator[WriteJob]:
        return write_jobs(self.manifest, self.plan, part_fetcher(self.repo, self.manifest))

    def _write_data(self) -> None:
        total = plan_bytes(self.manifest, self.plan)
        meter = ProgressMeter(self.sink, "write-data", total)
        self.sink(StageStarted("write-data", _("Writing {size} to {path}").format(
            size=human_bytes(total), path=self.plan.target.path), total))
        target = self.target_factory(self.plan.target.path, fd=self._held_fd())
        delta = self.plan.options.delta
        skipped = 0

        def fetch(job: WriteJob) -> bytes | None | bool:
            if delta and self._already_there(target, job):
                return True
            return self._decode(job)

        try:
            workers = max(DECODE_WORKERS, self.repo.parallel_reads)
            for job, raw in ordered_map(fetch, self._jobs(), workers, DEPTH, self.cancel):
                if raw is True:
                    skipped += job.length
                elif raw is None:
                    target.zero(job.offset, job.length)
                elif isinstance(raw, bytes):
                    target.pwrite(raw, job.offset)
                meter.add(job.length)
            target.flush()
            self.report.bytes_skipped = skipped
            self.report.bytes_written = meter.done - skipped
            self.report.throughput = meter.done / max(meter.elapsed, 1e-9)
            self._step("write-boot-areas", "done")
            self._step("write-data", "done",
                       f"{human_bytes(meter.done)} in {meter.elapsed:.1f} s "
                       f"({human_bytes(self.report.throughput)}/s)"
                       + (f", {human_bytes(skipped)} already in place" if delta else ""))
            self.sink(StageFinished("write-data", meter.elapsed, meter.done))
            if self.plan.options.verify:
                self._verify_written(target, total)
        finally:
            target.close()

    def _verify_written(self, target: BlockTarget, total: int) -> None:
        target.drop_cache()
        meter = ProgressMeter(self.sink, "verify-written-data", total)
        self.sink(StageStarted("verify-written-data", _("Reading back {size} to verify").format(
            size=human_bytes(total)), total))

        def check(job: WriteJob) -> None:
            if job.digest is None:
                ok = _reads_zero(target, job.offset, job.length)
            else:
                ok = codec.chunk_hash(target.pread(job.length, job.offset)) == job.digest
            if not ok:
                self.report.verified = False
                raise ImageCorruptError(_(
                    "Verification failed: {where} reads back differently from {path}; the "
                    "disk may be failing."
                ).format(where=job.where, path=self.plan.target.path))

        count = 0
        for job, _none in ordered_map(check, self._jobs(), DECODE_WORKERS, DEPTH, self.cancel):
            meter.add(job.length)
            count += 1
        self.report.verified = True
        self.sink(StageFinished("verify-written-data", meter.elapsed, meter.done))
        self._step("verify-written-data", "done", f"{count} chunks and zero runs match")

    def _fix_start_fields(self) -> None:
        """Boot sectors that record their partition's start (NTFS, FAT, exFAT) are told
        the new start of a partition that moved; written through the disk, like the data."""
        ss = self.plan.sector_size
        moved = [pp for pp in self.plan.partitions
                 if pp.moved and pp.filesystem in bootsector.START_FIELD_TYPES]
        if not moved:
            return
        target = self.target_factory(self.plan.target.path, fd=self._held_fd())
        try:
            for pp in moved:
                base = pp.start * ss
                end = base + pp.size * ss

                def read(offset: int, length: int, base: int = base, end: int = end) -> bytes:
                    if offset < 0 or base + offset + length > end:
                        return b""
                    return target.pread(length, base + offset)

                fix = bootsector.plan_start_fix(str(pp.filesystem), read, pp.source_start,
                                                pp.start, ss, length=pp.size * ss)
                for offset, data in fix.writes:
                    target.pwrite(data, base + offset)
                if fix.changes:
                    detail = _(
                        "partition {number} ({fstype}) moved from sector {old} to {new}: its "
                        "boot sector now records the new start ({copies} copies)"
                    ).format(number=pp.number, fstype=pp.filesystem, old=pp.source_start,
                             new=pp.start, copies=len(fix.writes))
                    self._step("fix-start-fields", "done", detail)
                else:
                    detail = _(
                        "partition {number} ({fstype}) moved from sector {old} to {new}; its "
                        "boot sector was not changed: {why}"
                    ).format(number=pp.number, fstype=pp.filesystem, old=pp.source_start,
                             new=pp.start, why=fix.note)
                    self._step("fix-start-fields", "skipped", detail)
                    self.report.warnings.append(detail)
            target.flush()
        finally:
            target.close()

    def _recreate_swap(self, nodes: dict[int, str]) -> None:
        for pp in self.plan.partitions:
            src = self.disk.partition(pp.number)
            found = registry.traits(src.filesystem)
            if src.method != METHOD_RECREATE or found is None or not found.recreate:
                continue
            argv = ["mkswap", "-f"]
            if src.fs_uuid:
                argv += ["-U", src.fs_uuid]
            if src.fs_label:
                argv += ["-L", src.fs_label]
            self.runner.run([*argv, nodes[pp.number]], what=_("Recreating swap {number}").format(
                number=pp.number))
            self._step("recreate-swap", "done", f"partition {pp.number}")

    def _rebuild(self, nodes: dict[int, str]) -> None:
        """The partitions planned smaller than their source: filesystem made anew with
        its identity, files copied from the image (rescue.engine.rebuild)."""
        for pp in self.plan.partitions:
            if pp.rebuild:
                detail = rebuild.rebuild_partition(
                    self.repo, self.manifest, self.plan.disk_index, pp.number,
                    nodes[pp.number], self.runner, self.sink, self.cancel)
                # its files were written too, not only the blocks of write-data
                self.report.bytes_written += pp.data_bytes
                self._step("rebuild-filesystems", "done", detail)

    def _grow(self, nodes: dict[int, str]) -> None:
        for pp in self.plan.partitions:
            if pp.grow_filesystem and pp.filesystem:
                size = human_bytes(pp.size * self.plan.sector_size)
                self.sink(LogMessage("info", _(
                    "Growing the {fstype} filesystem on partition {number} to {size}"
                ).format(fstype=pp.filesystem, number=pp.number, size=size)))
                try:
                    grow.grow(pp.filesystem, nodes[pp.number], self.runner)
                except RescueError as exc:
                    # the data is all there; only the growth is missing, and the system
                    # works at its old size: a warning, not a failed restore
                    detail = _(
                        "The {fstype} filesystem on partition {number} was not grown ({error}); "
                        "the restored data is complete and the system works at the old size. "
                        "Grow it later with the filesystem's own tool."
                    ).format(fstype=pp.filesystem, number=pp.number, error=exc)
                    self._step("grow-filesystems", "failed", detail)
                    self.report.warnings.append(detail)
                    continue
                self._step("grow-filesystems", "done", f"partition {pp.number}")

    def _fixups(self, nodes: dict[int, str]) -> None:
        if not self.plan.fixups:
            return
        previous = [str(row[4]) for row in self.plan.target.existing_layout if row[4]]
        drivers = list(self.plan.compatibility.get("initramfs_drivers", []))
        drivers += [d for d in self.plan.options.add_drivers if d not in drivers]
        ctx = FixupContext(
            disk=self.plan.target.path, partitions=nodes, manifest=self.manifest,
            firmware=self.plan.firmware,
            storage_drivers=drivers, runner=self.runner, sink=self.sink,
            previous_partuuids=previous, disk_index=self.plan.disk_index,
        )
        for r in run_fixups(ctx, self.plan.fixups):
            self.report.steps.append(StepResult(r.name, r.status, r.detail))
            if r.status == "failed":
                self.report.boot_fixups_failed = True
                self.report.warnings.append(_("Boot fix-up '{name}' failed: {detail}").format(
                    name=r.name, detail=r.detail))

    def _step(self, name: str, status: str, detail: str = "") -> None:
        self.report.steps.append(StepResult(name, status, detail))
        self.sink(LogMessage("info", f"{name}: {status}{' - ' + detail if detail else ''}"))

