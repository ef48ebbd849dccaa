"""Restore planning: pure. Every check that can refuse a restore on the grounds of the
image and the target's facts runs here, before anything is written."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rescue.errors import (
    IncompatibleImageError,
    TargetRefusedError,
    TargetTooSmallError,
    UsageError,
)
from rescue.events import human_bytes
from rescue.fs import registry
from rescue.i18n import N_, _
from rescue.image.manifest import METHOD_RECREATE, Disk, Manifest
from rescue.plan import geometry
from rescue.plan.fixups import FixupStep, plan_fixups, steps_to_json


@dataclass
class TargetInfo:
    """Facts about the disk to restore onto, gathered read-only before planning."""

    path: str
    size_bytes: int
    logical_sector_size: int
    physical_sector_size: int = 512
    read_only: bool = False
    busy: str = ""  # why it is in use ("/dev/sdb1 is mounted on /mnt"), "" when free
    holds_repository: bool = False
    is_boot_medium: bool = False
    model: str = ""
    serial: str = ""
    existing_table: str = ""  # "gpt" | "dos" | "" (none)
    existing_partitions: int = 0
    existing_signatures: list[str] = field(default_factory=list)
    # the table on the target now: disk id and (number, start, size, type, uuid) per
    # partition, so a delta restore can tell whether the layout is already in place
    existing_id: str = ""
    existing_layout: list[list[str | int]] = field(default_factory=list)
    # the target's identity, checked again through the open disk right before the first
    # write (a disk swapped or re-attached at the same node is refused): "major:minor",
    # the kernel's disk sequence number (new at each attach or media change), the WWN and
    # a /dev/disk/by-id name where the disk has them
    devnum: str = ""
    diskseq: int = 0
    wwn: str = ""
    by_id: str = ""
    partition_of: str = ""  # the whole disk when *path* is a partition (refused)

    @property
    def holds_data(self) -> bool:
        return bool(self.existing_table or self.existing_partitions or self.existing_signatures)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetInfo:
        return cls(**d)


@dataclass
class RestoreOptions:
    grow: bool = True  # grow the largest ext partition (and its filesystem) into free space
    verify: bool = False  # read every written chunk back and compare hashes
    verify_first: bool = False  # verify the whole image before writing anything
    force: bool = False  # restore even when the hardware verdict says "blocked"
    skip_fixups: list[str] = field(default_factory=list)
    delta: bool = False  # skip chunks the target already holds (resume, refresh)
    firmware: str = ""  # "uefi" | "bios": override how the restoring machine booted
    add_drivers: list[str] = field(default_factory=list)  # extra initramfs storage drivers
    shrink: bool = True  # onto a smaller disk: rebuild what can shrink, file by file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PartitionPlan:
    number: int
    kind: str
    start: int  # sectors on the target
    size: int  # sectors on the target
    source_start: int
    source_size: int
    type: str
    filesystem: str | None
    fs_label: str | None
    method: str
    data_bytes: int  # bytes that will be written (stored + zero chunks; a rebuild: files)
    grow_filesystem: bool = False
    # a restore onto a smaller disk: the filesystem is made anew, smaller, with the
    # source's identity, and its files are copied one by one from the image
    rebuild: bool = False

    @property
    def moved(self) -> bool:
        return self.start != self.source_start

    @property
    def grown(self) -> bool:
        return self.size > self.source_size

    @property
    def shrunk(self) -> bool:
        return self.size < self.source_size


# The hardware verdict's level as the summary names it.
HARDWARE_LEVELS = {
    "compatible": N_("compatible"),
    "fixups": N_("compatible with fix-ups"),
    "blocked": N_("BLOCKED (restoring anyway: --force)"),
}


@dataclass
class RestorePlan:
    image_id: str
    target: TargetInfo
    options: RestoreOptions
    table: str
    disk_id: str
    sector_size: int
    partitions: list[PartitionPlan]
    steps: list[str]
    data_bytes: int
    reuse_table: bool = False  # delta restore onto a disk that already has this layout
    compatibility: dict[str, Any] = field(default_factory=dict)  # the hardware verdict
    firmware: str = "bios"  # how the machine running the restore booted
    fixups: list[FixupStep] = field(default_factory=list)  # boot fix-ups after the data
    disk_index: int = 0  # which disk of the image this plan restores
    disk_count: int = 1  # how many disks the image holds

    def partition(self, number: int) -> PartitionPlan:
        return next(p for p in self.partitions if p.number == number)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "target": self.target.to_dict(),
            "options": self.options.to_dict(),
            "table": self.table,
            "disk_id": self.disk_id,
            "sector_size": self.sector_size,
            "partitions": [asdict(p) for p in self.partitions],
            "steps": list(self.steps),
            "data_bytes": self.data_bytes,
            "reuse_table": self.reuse_table,
            "compatibility": self.compatibility,
            "firmware": self.firmware,
            "fixups": steps_to_json(self.fixups),
            "disk_index": self.disk_index,
            "disk_count": self.disk_count,
        }

    def summary_lines(self) -> list[str]:
        t = self.target
        ss = self.sector_size
        size = human_bytes(t.size_bytes)
        model = t.model or _("disk")
        image = self.image_id
        if self.disk_count > 1:
            image = _("{image}, disk {n} of {count}").format(
                image=self.image_id, n=self.disk_index + 1, count=self.disk_count)
        if t.serial:
            onto = _("Image {image} onto {path} ({model}, serial {serial}, {size})").format(
                image=image, path=t.path, model=model, serial=t.serial, size=size)
        else:
            onto = _("Image {image} onto {path} ({model}, {size})").format(
                image=image, path=t.path, model=model, size=size)
        lines = [
            onto,
            _("Partition table: {table} {id}").format(table=self.table.upper(), id=self.disk_id),
        ]
        for p in self.partitions:
            what = f"{p.filesystem or p.kind}{' ' + repr(p.fs_label) if p.fs_label else ''}"
            fields = {"number": p.number, "what": what, "size": human_bytes(p.size * ss),
                      "sector": p.start}
            if p.grown:
                line = _("{number}: {what} {size} at sector {sector}, grown from {old}").format(
                    old=human_bytes(p.source_size * ss), **fields)
            elif p.rebuild:
                line = _(
                    "{number}: {what} {size} at sector {sector}, shrunk from {old}: made anew "
                    "with the same UUID and label, its files copied one by one (slower than "
                    "a block copy)").format(old=human_bytes(p.source_size * ss), **fields)
            elif p.moved:
                line = _("{number}: {what} {size} at sector {sector}, moved").format(**fields)
            else:
                line = _("{number}: {what} {size} at sector {sector}").format(**fields)
            lines.append("  " + line)
        lines.append(_("Data to write: {size}").format(size=human_bytes(self.data_bytes)))
        for p in self.partitions:
            kind = registry.encryption(p.filesystem)
            if kind == "BitLocker":
                lines.append(_(
                    "Partition {number} is encrypted with BitLocker: restored as it was, but "
                    "Windows may ask for the BitLocker recovery key when it starts on other "
                    "hardware. Have the key at hand (the Microsoft account or the printout)."
                ).format(number=p.number))
            elif kind:
                lines.append(_(
                    "Partition {number} is encrypted ({kind}): restored as it was, its "
                    "passphrase unchanged.").format(number=p.number, kind=kind))
        level = self.compatibility.get("level")
        if level:
            text = _(HARDWARE_LEVELS[level]) if level in HARDWARE_LEVELS else level
            drivers = self.compatibility.get("initramfs_drivers") or []
            if drivers:
                lines.append(_(
                    "Hardware: {verdict}; storage drivers for the initramfs: {drivers}"
                ).format(verdict=text, drivers=", ".join(drivers)))
            else:
                lines.append(_("Hardware: {verdict}").format(verdict=text))
        if t.holds_data:
            lines.append(_("Everything now on {path} will be erased.").format(path=t.path))
        if self.fixups:
            lines.append(_("Boot fix-ups ({firmware} firmware):").format(
                firmware=self.firmware.upper()))
            lines.extend("  " + s.summary_line() for s in self.fixups)
        lines.append(_("Steps: {steps}").format(steps=", ".join(self.steps)))
        return lines


def check_target(target: TargetInfo) -> None:
    """Refusals that depend on the target alone."""
    if target.partition_of:
        raise TargetRefusedError(_(
            "{path} is a partition of {disk}; only a whole disk can be a restore target "
            "(the restore replaces its partition table). Name the disk itself; nothing was "
            "written."
        ).format(path=target.path, disk=target.partition_of))
    if target.is_boot_medium:
        raise TargetRefusedError(_(
            "{path} is the medium the rescue system started from; choose another disk."
        ).format(path=target.path))
    if target.holds_repository:
        raise TargetRefusedError(_(
            "{path} holds the image repository being restored from; choose another disk."
        ).format(path=target.path))
    if target.read_only:
        raise TargetRefusedError(_("{path} is read-only (write-protected).").format(
            path=target.path))
    if target.busy:
        raise TargetRefusedError(_(
            "{path} is in use: {why}. Unmount it first; nothing was written."
        ).format(path=target.path, why=target.busy))


def _check_numbering(disk: Disk) -> None:
    if disk.table == "gpt":
        # Gaps are fine (the engine numbers the entries as on the source); the standard
        # GPT has 128 entries.
        numbers = [p.number for p in disk.partitions]
        if len(set(numbers)) != len(numbers) or not all(1 <= n <= 128 for n in numbers):
            raise UsageError(_(
                "The image's GPT partitions are numbered {numbers}; only numbers 1 to 128, "
                "each once, can be restored."
            ).format(numbers=numbers))
    else:
        # Primary (and extended) partitions may leave slots free (1, 3: restored so); the
        # logical ones are numbered 5, 6, ... by the chain of extended boot records.
        primaries = [p.number for p in disk.partitions if p.kind != "logical"]
        logicals = sorted(p.number for p in disk.partitions if p.kind == "logical")
        if (len(set(primaries)) != len(primaries) or not all(1 <= n <= 4 for n in primaries)
                or logicals != list(range(5, 5 + len(logicals)))):
            raise UsageError(_(
                "The image's MBR partitions are numbered {numbers}; primary partitions must "
                "be 1 to 4, each once, and logical ones 5, 6, ... without gaps."
            ).format(numbers=[p.number for p in disk.partitions]))


def _check_fits_table(disk: Disk, ss: int) -> None:
    """A partition (or boot area) that starts inside the table rescue writes (a source GPT
    with fewer than 128 entries) cannot be restored at the same place."""
    first = geometry.first_usable(disk.table, ss)
    low = min((p.start for p in disk.partitions if p.kind != "logical"), default=first)
    if low < first:
        raise UsageError(_(
            "The image's partition table lets a partition start at sector {start}; the "
            "table rescue writes ends at sector {first}, so this layout cannot be restored."
        ).format(start=low, first=first))
    for area in disk.boot_areas:
        # the MBR sector's boot code (bytes 0-439) is the image's; sectors 1 .. first-1
        # hold the GPT header and entries rescue writes
        end = area.offset + area.data.length
        if disk.table == "gpt" and area.offset < first * ss and end > ss:
            raise UsageError(_(
                "The image's boot area {area} starts at byte {offset}, inside the partition "
                "table rescue writes (which ends at byte {end}); it cannot be restored."
            ).format(area=area.name, offset=area.offset, end=first * ss))


def plan_restore_set(manifest: Manifest, targets: list[TargetInfo], options: RestoreOptions,
                     verdict: dict[str, Any] | None = None,
                     firmware: str = "bios") -> list[RestorePlan]:
    """One plan per disk of the image: the image's disk *i* goes onto ``targets[i]``.
    Every refusal of every disk is raised here, so nothing is written to any target
    unless all of them can be restored."""
    count = len(manifest.disks)
    if len(targets) != count:
        raise UsageError(_(
            "Image {image} holds {count} disk(s) ({sizes}); give one target disk for each, "
            "in the image's order ({given} given)."
        ).format(image=manifest.id, count=count, given=len(targets),
                 sizes=", ".join(human_bytes(d.size_bytes) for d in manifest.disks)))
    paths = [t.path for t in targets]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise UsageError(_(
            "{disks} is given as the target of more than one of the image's disks; each "
            "disk of the image needs its own target disk."
        ).format(disks=", ".join(twice)))
    return [plan_restore(manifest, t, options, verdict, firmware, disk_index=i)
            for i, t in enumerate(targets)]


def plan_restore(manifest: Manifest, target: TargetInfo, options: RestoreOptions,
                 verdict: dict[str, Any] | None = None, firmware: str = "bios",
                 disk_index: int = 0) -> RestorePlan:
    """*verdict*: the hardware compatibility verdict (rescue.hardware.compat) as a dict;
    a "blocked" verdict refuses the restore unless options.force. *firmware*: how the
    machine running the restore booted (options.firmware overrides it); it decides the
    UEFI/BIOS boot fix-ups. *disk_index*: which disk of the image goes onto *target*
    (multi-disk images: see :func:`plan_restore_set`)."""
    if not 0 <= disk_index < len(manifest.disks):
        raise UsageError(_("Image {image} has no disk {n}.").format(
            image=manifest.id, n=disk_index + 1))
    disk = manifest.disks[disk_index]
    check_target(target)
    verdict = verdict or {}
    if verdict.get("level") == "blocked" and not options.force:
        reasons = [f"{d.get('component')}: {d.get('source')} -> {d.get('target')}"
                   for d in verdict.get("differences", []) if d.get("klass") == "boot-critical"]
        raise IncompatibleImageError(_(
            "Image {image} cannot boot on this hardware ({reasons}). "
            "Restore anyway with --force, or choose another image."
        ).format(image=manifest.id, reasons="; ".join(reasons)))
    ss = disk.logical_sector_size
    if target.logical_sector_size != ss:
        raise TargetRefusedError(_(
            "{path} has {target_sector}-byte sectors; the image was made on a disk with "
            "{image_sector}-byte sectors, so its layout cannot be copied."
        ).format(path=target.path, target_sector=target.logical_sector_size, image_sector=ss))
    _check_numbering(disk)
    target_sectors = target.size_bytes // ss
    dst_end = geometry.usable_end(disk.table, target_sectors, ss)
    needed_end = max((p.start + p.size for p in disk.partitions), default=0)
    _check_fits_table(disk, ss)

    plans = []
    for p in sorted(disk.partitions, key=lambda x: x.start):
        data_bytes = 0
        if p.data:
            data_bytes = p.data.stored_chunk_bytes + p.data.zero_bytes
        plans.append(
            PartitionPlan(
                number=p.number, kind=p.kind, start=p.start, size=p.size,
                source_start=p.start, source_size=p.size, type=p.type,
                filesystem=p.filesystem, fs_label=p.fs_label, method=p.method,
                data_bytes=data_bytes,
            )
        )

    if needed_end > dst_end:
        _shrink(plans, disk, target, needed_end, dst_end, options.shrink)
    elif options.grow and target_sectors > disk.sectors:
        # fill the disk: free space at the end of the source is taken up too
        _grow(plans, disk.table, dst_end - needed_end, geometry.align_sectors(ss))

    layout = [[p.number, p.start, p.size, p.type.upper(), (_src_uuid(disk, p.number))]
              for p in sorted(plans, key=lambda x: x.number)]
    reuse_table = bool(options.delta and target.existing_id.lower() == disk.id.lower()
                       and target.existing_layout == layout)
    if reuse_table:
        steps = ["check-target", "keep-partition-table", "write-boot-areas", "write-changed-data"]
    else:
        steps = ["check-target", "wipe-signatures", "write-partition-table",
                 "write-boot-areas", "write-changed-data" if options.delta else "write-data"]
    if options.verify_first:
        steps.insert(1, "verify-image")
    if options.verify:
        steps.append("verify-written-data")
    if any(p.rebuild for p in plans):
        steps.append("rebuild-filesystems")
    start_fields = registry.start_field_types()
    if any(p.moved and p.filesystem in start_fields for p in plans):
        steps.append("fix-start-fields")
    if any(p.method == METHOD_RECREATE for p in plans):
        steps.append("recreate-swap")
    if any(p.grow_filesystem for p in plans):
        steps.append("grow-filesystems")
    firmware = options.firmware or firmware
    drivers = list(verdict.get("initramfs_drivers", []))
    drivers += [d for d in options.add_drivers if d not in drivers]
    fixups = plan_fixups(manifest, firmware, drivers, set(options.skip_fixups), disk_index)
    steps.extend(s.name for s in fixups if not s.skip)
    steps.append("sync")
    total = sum(p.data_bytes for p in plans) + sum(
        a.data.stored_chunk_bytes + a.data.zero_bytes for a in disk.boot_areas
    )
    plans.sort(key=lambda x: x.number)
    return RestorePlan(
        image_id=manifest.id, target=target, options=options, table=disk.table,
        disk_id=disk.id, sector_size=ss, partitions=plans, steps=steps, data_bytes=total,
        reuse_table=reuse_table, compatibility=verdict, firmware=firmware, fixups=fixups,
        disk_index=disk_index, disk_count=len(manifest.disks),
    )


#: what a filesystem made anew needs beyond the bytes of its files: metadata (inode
#: tables are 1.6% of an ext4), a journal (up to 1 GiB) and room to work in: a tenth of
#: the data, plus 1/16 of it between 32 MiB and 1 GiB
REBUILD_SLACK = 0.10
REBUILD_EXTRA_MIN, REBUILD_EXTRA_MAX = 32 << 20, 1 << 30


def rebuild_floor(fstype: str | None, used_bytes: int, sector_size: int, align: int) -> int:
    """The fewest sectors (aligned) a filesystem made anew can have and still hold
    *used_bytes* of files."""
    found = registry.traits(fstype)
    smallest = found.min_bytes if found is not None else 0
    extra = min(REBUILD_EXTRA_MAX, max(REBUILD_EXTRA_MIN, used_bytes // 16))
    want = max(smallest, int(used_bytes * (1 + REBUILD_SLACK)) + extra)
    sectors = -(-want // sector_size)
    return -(-sectors // align) * align


def _shrink(plans: list[PartitionPlan], disk: Disk, target: TargetInfo, needed_end: int,
            dst_end: int, allowed: bool = True) -> None:
    """Make the image's layout fit a smaller disk: the partitions whose filesystem can be
    made anew and filled file by file shrink, the largest first, each to no less than
    what its data needs (:func:`rebuild_floor`); the others keep their size; the table
    keeps its order, numbers and identities (later partitions move down). Refused, with
    the numbers, when even that does not fit."""
    ss = disk.logical_sector_size
    align = geometry.align_sectors(ss)
    need = geometry.needed_disk_sectors(disk.table, needed_end, ss) * ss
    facts = {"path": target.path, "size": human_bytes(target.size_bytes),
             "size_bytes": target.size_bytes, "need": human_bytes(need), "need_bytes": need}
    if not allowed:
        raise TargetTooSmallError(_(
            "Target disk {path} is {size} ({size_bytes} bytes); the image's partitions need "
            "{need} ({need_bytes} bytes). Use a disk at least that large.").format(**facts))
    too_small = _(
        "Target disk {path} is {size} ({size_bytes} bytes); the image's partitions need "
        "{need} ({need_bytes} bytes).").format(**facts)
    if any(p.kind in ("extended", "logical") for p in plans):
        raise TargetTooSmallError(too_small + " " + _(
            "An MBR table with logical partitions is not shrunk; use a disk at least that "
            "large."))
    rebuildable = registry.rebuildable()
    floors = {p.number: rebuild_floor(p.filesystem, disk.partition(p.number).used_bytes, ss,
                                      align)
              for p in plans if p.filesystem in rebuildable}
    deficit = needed_end - dst_end
    deficit = -(-deficit // align) * align
    cuts: dict[int, int] = {}
    for p in sorted((p for p in plans if p.number in floors),
                    key=lambda p: (-p.size, p.start)):
        if deficit <= 0:
            break
        room = (p.size - floors[p.number]) // align * align
        cut = min(deficit, max(0, room))
        if cut > 0:
            cuts[p.number] = cut
            deficit -= cut
    if deficit > 0:
        least = needed_end - sum(max(0, (p.size - floors[p.number]) // align * align)
                                 for p in plans if p.number in floors)
        least_bytes = geometry.needed_disk_sectors(disk.table, least, ss) * ss
        fixed = [p for p in plans if p.number not in floors and p.size * ss >= 64 << 20]
        why = _(
            "Even with {shrinkable} shrunk to what their data needs, the image needs "
            "{least} ({least_bytes} bytes). Use a disk at least that large."
        ).format(shrinkable=", ".join(
            f"{p.number} ({p.filesystem})" for p in plans if p.number in floors) or "-",
            least=human_bytes(least_bytes), least_bytes=least_bytes)
        if not floors:
            why = _("None of its partitions can be shrunk (rescue rebuilds ext2/3/4, xfs, "
                    "btrfs and vfat file by file). Use a disk at least that large.")
        if fixed:
            why += " " + _("Not shrunk: {partitions} (their filesystems cannot be rebuilt "
                           "file by file without losing what a file copy does not carry, "
                           "NTFS among them).").format(partitions=", ".join(
                               f"{p.number} ({p.filesystem or p.type})" for p in fixed))
        raise TargetTooSmallError(too_small + " " + why)
    shift = 0
    for p in sorted(plans, key=lambda x: x.start):
        p.start -= shift
        cut = cuts.get(p.number, 0)
        if cut:
            p.size -= cut
            p.rebuild = True
            p.data_bytes = disk.partition(p.number).used_bytes
            shift += cut


def _src_uuid(disk: Disk, number: int) -> str:
    return (disk.partition(number).uuid or "").upper()


def _grow(plans: list[PartitionPlan], table: str, extra: int, align: int) -> None:
    """Give the extra sectors to the largest growable partition; partitions after it move
    up by as much, keeping their size. A logical partition grows inside its extended
    partition, which grows with it; a primary one before the extended partition moves
    the whole container (its logical partitions keep their places relative to it)."""
    growable = registry.growable()
    candidates = [p for p in plans if p.filesystem in growable and p.kind != "extended"]
    if not candidates:
        return
    grow = max(candidates, key=lambda p: (p.size, -p.start))
    after = [p for p in plans if p.start > grow.start]
    # the extended partition that holds a growing logical one grows with it
    container = next((p for p in plans if p.kind == "extended"), None) \
        if grow.kind == "logical" else None
    if table == "dos":
        # an MBR entry cannot reach past 2^32 sectors: grow up to there, no further (the
        # rest of a larger disk stays unused; only GPT can address it)
        moving = [grow, *after, *([container] if container else [])]
        extra = min(extra, geometry.MBR_MAX_SECTORS - max(p.start + p.size for p in moving))
    extra -= extra % align
    if extra <= 0:
        return
    grow.size += extra
    grow.grow_filesystem = True
    for p in after:
        p.start += extra
    if container is not None:
        container.size += extra
