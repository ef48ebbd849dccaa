"""Geometry, by property (issue 9): for generated GPT and MBR layouts (partitions up to the
last usable sector, gaps, numbering holes, tiny and unaligned partitions, extended/logical
chains, 512- and 4096-byte sectors) the restore plan fits a disk of the source's exact
size, one sector more and a larger disk; partitions never overlap; no write leaves its
partition; the GPT areas are never written; starts and sizes are kept except for the one
partition that grows and those that move behind it.

The table geometry is computed here from first principles (protective MBR, header, 128
entries of 128 bytes) and checked against rescue.plan.geometry, not taken from it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from rescue.engine.backup import _boot_areas
from rescue.engine.restore import write_jobs
from rescue.errors import TargetTooSmallError
from rescue.fs.registry import growable
from rescue.image.manifest import (
    METHOD_NONE,
    METHOD_RECREATE,
    METHOD_USED_BLOCKS,
    METHOD_WHOLE,
    BootArea,
    ChunkedData,
    Disk,
    Manifest,
    Partition,
)
from rescue.plan import geometry
from rescue.plan.restore import RestoreOptions, RestorePlan, TargetInfo, plan_restore

KiB = 1024
MiB = 1024 * KiB
MBR_LIMIT = 2**32 - 1  # an MBR entry's start and size are 32-bit sector counts

# -- the geometry, from first principles ------------------------------------------------


def entry_sectors(ss: int) -> int:
    """GPT entry array: 128 entries x 128 bytes = 16 KiB, in whole sectors."""
    return (128 * 128 + ss - 1) // ss


def first_usable(table: str, ss: int) -> int:
    # GPT: protective MBR (LBA 0), header (LBA 1), entry array; MBR: sector 0 only
    return 1 + 1 + entry_sectors(ss) if table == "gpt" else 1


def usable_end(table: str, sectors: int, ss: int) -> int:
    """One past the last usable sector (GPT: backup entries, then the backup header in
    the very last sector)."""
    return sectors - entry_sectors(ss) - 1 if table == "gpt" else sectors


def test_first_principles_match_the_well_known_numbers_and_the_product() -> None:
    sectors = 1_000_000
    # what gdisk/fdisk print: first usable 34 / 6; last usable sectors-34 / sectors-6
    assert first_usable("gpt", 512) == 34 and usable_end("gpt", sectors, 512) - 1 == sectors - 34
    assert first_usable("gpt", 4096) == 6 and usable_end("gpt", sectors, 4096) - 1 == sectors - 6
    for table in ("gpt", "dos"):
        for ss in (512, 4096):
            assert geometry.first_usable(table, ss) == first_usable(table, ss)
            assert geometry.usable_end(table, sectors, ss) == usable_end(table, sectors, ss)
            assert geometry.align_sectors(ss) * ss == MiB
            end = usable_end(table, sectors, ss)
            assert geometry.needed_disk_sectors(table, end, ss) == sectors
            reserved = geometry.reserved_ranges(table, sectors, ss)
            if table == "gpt":
                assert reserved == [(1, first_usable(table, ss)), (end, sectors)]
            else:
                assert reserved == []


# -- generated layouts ----------------------------------------------------------------

GPT_TYPES = {
    "ext4": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "xfs": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    "btrfs": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "ntfs": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
    "vfat": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "swap": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
    None: "21686148-6449-6E6F-744E-656564454649",
}
MBR_TYPES = {"ext4": "83", "xfs": "83", "btrfs": "83", "ntfs": "7", "vfat": "ef", "swap": "82",
             None: "da"}
FILESYSTEMS = ["ext4", "xfs", "btrfs", "ntfs", "vfat", "swap", None]


def _digest(n: int) -> str:
    return f"{n:064x}"


@st.composite
def chunked(draw: st.DrawFn, length: int, cs: int) -> ChunkedData:
    """Stored chunks and zero runs spread over the whole range: always the first chunk
    and the last (partial when the length is not a multiple of the chunk size)."""
    n = -(-length // cs)
    picks = draw(st.lists(st.integers(0, n - 1), max_size=5, unique=True))
    indices = sorted({0, n - 1, *picks})
    data = ChunkedData(length=length, chunk_size=cs)
    covered = 0
    for k, index in enumerate(indices):
        if index < covered:
            continue
        following = indices[k + 1] if k + 1 < len(indices) else n
        kind = draw(st.sampled_from(["chunk", "zero", "run"]))
        if kind == "chunk":
            data.chunks.append((index, _digest(index)))
            covered = index + 1
        else:
            run = 1 if kind == "zero" else draw(st.integers(1, min(following - index, 64)))
            data.zero.append((index, run))
            covered = index + run
    return data


@dataclass
class Layout:
    manifest: Manifest
    larger_by: int  # sectors the "larger" target has beyond the source

    @property
    def disk(self) -> Disk:
        return self.manifest.disks[0]


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    table = draw(st.sampled_from(["gpt", "dos"]))
    ss = draw(st.sampled_from([512, 4096]))
    cs = draw(st.sampled_from([MiB, 256 * KiB, 64 * KiB, 4096]))
    align = MiB // ss
    cursor = first_usable(table, ss)

    def gap(minimum: int = 0, lead: bool = False) -> int:
        kind = draw(st.sampled_from(["none", "small", "align", "large"]))
        if kind == "none":
            return minimum
        if kind == "small":
            return draw(st.integers(max(1, minimum), 64))
        if kind == "align":  # up to the next 1 MiB boundary (+ whole MiBs)
            to_boundary = -cursor % align + align * draw(st.integers(0, 3))
            return max(minimum, to_boundary)
        # the leading gap is a boot area, kept to a few MiB (every chunk of it is listed)
        return draw(st.integers(max(1, minimum), (4 * MiB if lead else 1024 * MiB) // ss))

    def size() -> int:
        kind = draw(st.sampled_from(["tiny", "small", "aligned", "large"]))
        if kind == "tiny":
            return draw(st.integers(1, 16))
        if kind == "small":
            return draw(st.integers(17, 64 * MiB // ss))
        if kind == "aligned":
            return align * draw(st.integers(1, 4096))
        return draw(st.integers(1, 2**31 if table == "dos" else 2**34))

    def fs_partition(number: int, start: int, length: int, kind: str = "primary") -> Partition:
        fs = draw(st.sampled_from(FILESYSTEMS))
        types = GPT_TYPES if table == "gpt" else MBR_TYPES
        if fs == "swap":
            method = METHOD_RECREATE
        elif fs is None:
            method = METHOD_WHOLE
        else:
            method = METHOD_USED_BLOCKS
        data = None if method == METHOD_RECREATE else draw(chunked(length * ss, cs))
        return Partition(number, start, length, types[fs], kind=kind, filesystem=fs,
                         uuid=f"{number:08X}-0000-4000-8000-000000000000", method=method,
                         data=data)

    parts: list[Partition] = []
    first = True
    if table == "gpt":
        numbers = draw(st.lists(st.integers(1, 128), min_size=1, max_size=6, unique=True))
        for number in numbers:
            cursor += gap(lead=first)
            first = False
            length = size()
            parts.append(fs_partition(number, cursor, length))
            cursor += length
    else:
        primaries = draw(st.integers(0, 4))
        extended = primaries < 4 and (primaries == 0 or draw(st.booleans()))
        slots = draw(st.permutations([1, 2, 3, 4]))[: primaries + extended]
        ext_at = draw(st.integers(0, primaries)) if extended else -1
        logical_number = 5
        for k, slot in enumerate(slots):
            cursor += gap(lead=first)
            first = False
            if k != ext_at:
                length = size()
                parts.append(fs_partition(slot, cursor, length))
                cursor += length
                continue
            ext_start = cursor
            for _ in range(draw(st.integers(0, 4))):
                cursor += gap(minimum=1)  # the extended boot record before each logical
                length = size()
                parts.append(fs_partition(logical_number, cursor, length, "logical"))
                logical_number += 1
                cursor += length
            cursor += draw(st.sampled_from([0, 0, 1, 7, align]))
            cursor = max(cursor, ext_start + 1)
            parts.append(Partition(slot, ext_start, cursor - ext_start,
                                   draw(st.sampled_from(["5", "f"])), kind="extended",
                                   method=METHOD_NONE))
    # the last partition often runs to the last usable sector (gdisk's and fdisk's default)
    trailing = draw(st.sampled_from([0, 0, 1, align - 1, align, None]))
    if trailing is None:
        trailing = draw(st.integers(0, 2**24))
    sectors = cursor + trailing + (entry_sectors(ss) + 1 if table == "gpt" else 0)
    if table == "dos":
        # a valid MBR source: every partition ends within 2^32-1 sectors
        assume(all(p.start + p.size <= MBR_LIMIT for p in parts))
    disk = Disk(size_bytes=sectors * ss, logical_sector_size=ss,
                physical_sector_size=max(ss, 4096), table=table,
                id="6F3C1E2A-0000-4000-8000-000000000001" if table == "gpt" else "0x1234abcd",
                first_lba=first_usable(table, ss) if table == "gpt" else None,
                last_lba=usable_end(table, sectors, ss) - 1 if table == "gpt" else None,
                partitions=parts)
    _record_boot_areas(disk, cs, draw(st.booleans()))
    larger_by = draw(st.one_of(st.integers(2, 4 * align), st.integers(2, 2**24),
                               st.integers(2**24, 2**34)))
    return Layout(_manifest(disk, cs), larger_by)


def _record_boot_areas(disk: Disk, cs: int, boot_code: bool) -> None:
    """The boot areas the backup records for this layout (its own rule), every chunk of
    them listed (the backup reads them whole)."""
    disk.boot_areas = []
    for name, offset, length in _boot_areas(disk):
        n = -(-length // cs)
        data = ChunkedData(length=length, chunk_size=cs)
        if boot_code:
            data.chunks = [(i, _digest(i)) for i in range(n)]
        else:
            data.zero = [(0, n)]
        disk.boot_areas.append(BootArea(name, offset, data))


def _manifest(disk: Disk, cs: int) -> Manifest:
    return Manifest(id="20260101T000000Z-geomet", name="g", created_utc="2026-01-01T00:00:00Z",
                    created_local="2026-01-01T00:00:00+00:00", timezone="", computer="pc",
                    os_name="", os_id="", os_version="", firmware="bios", hardware={},
                    chunk_size=cs, compression="zstd", disks=[disk])


# -- the properties -------------------------------------------------------------------


def _target(disk: Disk, sectors: int) -> TargetInfo:
    ss = disk.logical_sector_size
    return TargetInfo(path="/dev/sdz", size_bytes=sectors * ss, logical_sector_size=ss,
                      physical_sector_size=max(ss, 4096))


def _plan(manifest: Manifest, sectors: int, grow: bool) -> RestorePlan:
    # the exact-fit rules: no shrinking onto a smaller disk (tests/unit/test_plan_shrink.py)
    return plan_restore(manifest, _target(manifest.disks[0], sectors),
                        RestoreOptions(grow=grow, shrink=False), firmware="bios")


def check_plan(manifest: Manifest, sectors: int, grow: bool) -> RestorePlan:
    """Plan the image onto a disk of *sectors* sectors and check every geometric property
    of the plan and of its writes."""
    disk = manifest.disks[0]
    ss, table = disk.logical_sector_size, disk.table
    align = MiB // ss
    plan = _plan(manifest, sectors, grow)  # never refused: the disk is large enough
    lo, hi = first_usable(table, ss), usable_end(table, sectors, ss)
    src = {p.number: p for p in disk.partitions}
    got = {p.number: p for p in plan.partitions}
    assert sorted(got) == sorted(src)
    for n, p in got.items():
        assert p.kind == src[n].kind and p.type == src[n].type
        assert p.size >= 1
        # inside the usable area of the TARGET
        assert lo <= p.start and p.start + p.size <= hi, (n, p.start, p.size, lo, hi)
        if table == "dos":
            assert p.start <= MBR_LIMIT and p.size <= MBR_LIMIT
            assert p.start + p.size <= MBR_LIMIT  # every source partition ends within it

    # no overlaps; logical partitions inside the extended one, an EBR sector before each
    outer = sorted((p for p in plan.partitions if p.kind != "logical"), key=lambda p: p.start)
    for a, b in zip(outer, outer[1:], strict=False):
        assert a.start + a.size <= b.start, (a.number, b.number)
    logicals = sorted((p for p in plan.partitions if p.kind == "logical"),
                      key=lambda p: p.start)
    if logicals:
        (ext,) = [p for p in plan.partitions if p.kind == "extended"]
        previous_end = ext.start
        for p in logicals:
            assert previous_end + 1 <= p.start, (p.number, previous_end)  # room for its EBR
            assert p.start + p.size <= ext.start + ext.size
            previous_end = p.start + p.size

    # kept, grown, moved: at most one partition grows (a logical one inside its extended
    # partition, which grows with it by as much); those after it move by its growth
    grown = [p for p in plan.partitions if p.grow_filesystem]
    resized = {p.number for p in plan.partitions if p.size != src[p.number].size}
    target_larger = sectors > disk.sectors
    if grown:
        assert grow and target_larger
        (g,) = grown
        delta = g.size - src[g.number].size
        assert delta > 0 and delta % align == 0
        assert g.start == src[g.number].start
        assert g.filesystem in growable() and g.kind != "extended"
        needed_end = max(p.start + p.size for p in disk.partitions)
        # fills the disk in whole MiB; an MBR only as far as its 32-bit entries reach
        room = (min(hi, MBR_LIMIT) if disk.table == "dos" else hi) - needed_end
        assert room - align < delta <= room
        if g.kind == "logical":
            (ext,) = [p for p in plan.partitions if p.kind == "extended"]
            assert resized == {g.number, ext.number}
            assert ext.start == src[ext.number].start
            assert ext.size == src[ext.number].size + delta
        else:
            assert resized == {g.number}
    else:
        delta = 0
        assert not resized
    pivot = grown[0].start if grown else None
    for n, p in got.items():
        s = src[n]
        if n in resized:
            continue
        shift = delta if pivot is not None and s.start > pivot else 0
        assert (p.start, p.size) == (s.start + shift, s.size), (n, p.start, p.size)
        assert (p.source_start, p.source_size) == (s.start, s.size)

    # every write inside its own partition, or (boot areas) before the first one and
    # outside the GPT's areas
    jobs = write_jobs(manifest, plan)
    first_start = min(p.start for p in plan.partitions) * ss
    reserved = [(ss, lo * ss), (hi * ss, sectors * ss)] if table == "gpt" else []
    written = 0
    last_end = 0
    for job in jobs:
        end = job.offset + job.length
        assert job.length > 0 and end <= sectors * ss
        assert job.offset >= last_end  # no write overlaps another
        last_end = end
        written += job.length
        for r0, r1 in reserved:
            assert end <= r0 or job.offset >= r1, (job, r0, r1)
        m = re.search(r"partition (\d+), offset (\d+)$", job.where)
        if m:
            p = got[int(m.group(1))]
            assert p.kind != "extended"
            base = p.start * ss
            assert base <= job.offset and end <= base + p.size * ss, (job, p)
            assert job.offset - base == int(m.group(2))
        else:
            assert re.search(r"boot area (mbr-boot-code|post-mbr-gap), offset \d+$", job.where)
            assert end <= first_start, job
            for p in plan.partitions:
                assert end <= p.start * ss or job.offset >= (p.start + p.size) * ss
    assert written == plan.data_bytes
    return plan


def needed_sectors(disk: Disk) -> int:
    """The smallest disk the image's partitions fit, from first principles."""
    end = max(p.start + p.size for p in disk.partitions)
    ss = disk.logical_sector_size
    return end + entry_sectors(ss) + 1 if disk.table == "gpt" else end


def check_layout(layout: Layout) -> None:
    disk = layout.disk
    sectors = disk.sectors
    lo = first_usable(disk.table, disk.logical_sector_size)
    hi = usable_end(disk.table, sectors, disk.logical_sector_size)
    # the generated source itself is valid
    assert all(lo <= p.start and p.start + p.size <= hi for p in disk.partitions)
    align = MiB // disk.logical_sector_size
    trailing = hi - max(p.start + p.size for p in disk.partitions)
    for grow in (True, False):
        same = check_plan(layout.manifest, sectors, grow)
        assert all(not p.moved and not p.grown for p in same.partitions)
        plus_one = check_plan(layout.manifest, sectors + 1, grow)
        if trailing + 1 < align:  # less than 1 MiB of room: nothing to grow into
            assert all(not p.moved and not p.grown for p in plus_one.partitions)
        check_plan(layout.manifest, sectors + layout.larger_by, grow)

    # one sector less than needed is refused, naming exactly the size that is accepted
    need = needed_sectors(disk)
    ss = disk.logical_sector_size
    with pytest.raises(TargetTooSmallError) as err:
        _plan(layout.manifest, need - 1, True)
    named = [int(x) for x in re.findall(r"\((\d+) bytes\)", str(err.value))]
    assert named == [(need - 1) * ss, need * ss], str(err.value)
    check_plan(layout.manifest, need, True)
    check_plan(layout.manifest, need, False)


# -- explicit cases (the issue's, and generated ones that once failed) ----------------

LINUX = GPT_TYPES["ext4"]


def _single(ss: int, table: str, start: int, sectors: int, fs: str = "ext4",
            cs: int = MiB) -> Layout:
    """One partition from *start* to the last usable sector of a disk of *sectors*."""
    end = usable_end(table, sectors, ss)
    last = -(-(end - start) * ss // cs) - 1  # the last chunk is stored as zero
    part = Partition(1, start, end - start, LINUX if table == "gpt" else "83", filesystem=fs,
                     uuid="00000001-0000-4000-8000-000000000000", method=METHOD_USED_BLOCKS,
                     data=ChunkedData(length=(end - start) * ss, chunk_size=cs,
                                      chunks=[(0, _digest(0))],
                                      zero=[(last, 1)] if last else []))
    disk = Disk(size_bytes=sectors * ss, logical_sector_size=ss, physical_sector_size=4096,
                table=table, id="G" if table == "gpt" else "0x1234abcd",
                first_lba=first_usable(table, ss) if table == "gpt" else None,
                last_lba=end - 1 if table == "gpt" else None, partitions=[part])
    _record_boot_areas(disk, cs, True)
    return Layout(_manifest(disk, cs), 1024 * MiB // ss)


@pytest.mark.parametrize("ss", [512, 4096])
def test_issue_9_sgdisk_default_end_fits_a_disk_of_the_same_size(ss: int) -> None:
    """`sgdisk -n1:1MiB:0` on a 512 MiB disk: the partition ends at the last usable LBA
    (sectors-34 at 512-byte sectors, sectors-6 at 4096); restored onto the same size it
    was refused with "needs ... 512 bytes more" (usable end taken as the last LBA)."""
    sectors = 512 * MiB // ss
    layout = _single(ss, "gpt", MiB // ss, sectors)
    part = layout.disk.partitions[0]
    assert part.start + part.size - 1 == sectors - (34 if ss == 512 else 6)
    plan = check_plan(layout.manifest, sectors, True)
    assert (plan.partitions[0].start, plan.partitions[0].size) == (part.start, part.size)
    check_layout(layout)


@pytest.mark.parametrize("ss", [512, 4096])
def test_mbr_partition_to_the_very_last_sector_fits_the_same_size(ss: int) -> None:
    sectors = 256 * MiB // ss + 3  # not a whole number of MiB
    layout = _single(ss, "dos", MiB // ss, sectors)
    assert layout.disk.partitions[0].start + layout.disk.partitions[0].size == sectors
    check_layout(layout)


def test_larger_disk_grows_the_single_partition_to_the_end_in_whole_mib() -> None:
    layout = _single(4096, "gpt", 256, 512 * MiB // 4096)
    plan = check_plan(layout.manifest, 1024 * MiB // 4096 + 3, True)
    (p,) = plan.partitions
    assert p.grown and p.size - layout.disk.partitions[0].size == 512 * MiB // 4096


@pytest.mark.parametrize("ss", [512, 4096])
def test_smallest_gpt_disk_one_sector_partition_at_the_first_usable_lba(ss: int) -> None:
    """Shrunk by hypothesis from the usable-end defect: the smallest GPT disk there is
    (68 sectors at 512 bytes, 12 at 4096) with a 1-sector partition."""
    sectors = 2 * (2 + entry_sectors(ss))
    layout = _single(ss, "gpt", first_usable("gpt", ss), sectors)
    assert layout.disk.partitions[0].size == 1 and layout.disk.boot_areas[-1].name != \
        "post-mbr-gap"
    check_layout(layout)


def test_growth_at_4096_byte_sectors_is_aligned_to_1_mib_not_2048_sectors() -> None:
    """Shrunk by hypothesis from the fixed 2048-sector step (8 MiB at 4096-byte sectors):
    2 MiB more room grows the partition by exactly 2 MiB (512 sectors)."""
    layout = _single(4096, "gpt", 256, 64 * MiB // 4096)
    plan = check_plan(layout.manifest, 66 * MiB // 4096 + 3, True)
    assert plan.partitions[0].size - layout.disk.partitions[0].size == 512


def test_mbr_growth_stops_where_an_mbr_entry_ends() -> None:
    # 512-byte sectors: the partition ends 1 MiB short of 2^32 sectors
    end = 2**32 - 2048
    layout = _single(512, "dos", 2048, end)
    plan = check_plan(layout.manifest, end + 2**30, True)
    assert not plan.partitions[0].grown


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(layouts())
def test_every_generated_layout_fits_equal_and_larger_disks(layout: Layout) -> None:
    disk = layout.disk
    # what the examples cover (pytest --hypothesis-show-statistics)
    event(f"{disk.table} {disk.logical_sector_size}")
    if any(p.kind == "logical" for p in disk.partitions):
        event("logical partitions")
    if needed_sectors(disk) == disk.sectors:
        event("last partition to the last usable sector")
    larger = _plan(layout.manifest, disk.sectors + layout.larger_by, True)
    grown = [p.kind for p in larger.partitions if p.grow_filesystem]
    event(f"larger disk: {grown[0]} partition grown" if grown else "larger disk: not grown")
    if any(p.moved and p.kind == "extended" for p in larger.partitions):
        event("larger disk: extended partition moved")
    check_layout(layout)
