"""Planning a restore onto a smaller disk (issue 13): the partitions whose filesystem can
be made anew and filled file by file shrink, the largest first, never below what their
data needs; the others keep their size; order, numbers, types and identities stay; a
refusal names the smallest disk that works, and that disk does work. Generated layouts
(hypothesis) on 512- and 4096-byte sectors, GPT and MBR."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_manifest import sample_manifest

from rescue.errors import TargetTooSmallError
from rescue.fs import registry
from rescue.image.manifest import Manifest, Partition
from rescue.plan import geometry
from rescue.plan.restore import RestoreOptions, TargetInfo, plan_restore, rebuild_floor

MiB = 1024 * 1024
GiB = 1024 * MiB
TYPES = {"gpt": {"ext4": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                 "xfs": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                 "btrfs": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                 "vfat": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                 "ntfs": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
                 "swap": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
                 None: "21686148-6449-6E6F-744E-656564454649"},
         "dos": {"ext4": "83", "xfs": "83", "btrfs": "83", "vfat": "c", "ntfs": "7",
                 "swap": "82", None: "da"}}
FILESYSTEMS = ["ext4", "xfs", "btrfs", "vfat", "ntfs", "swap", None]


def _target(size: int, ss: int) -> TargetInfo:
    return TargetInfo(path="/dev/sdz", size_bytes=size, logical_sector_size=ss,
                      physical_sector_size=max(ss, 4096))


@st.composite
def layouts(draw: st.DrawFn) -> Manifest:
    ss = draw(st.sampled_from([512, 4096]))
    table = draw(st.sampled_from(["gpt", "dos"]))
    align = geometry.align_sectors(ss)
    m = sample_manifest()
    disk = m.disks[0]
    disk.logical_sector_size = disk.physical_sector_size = ss
    disk.table = table
    start = align
    parts = []
    for number in range(1, draw(st.integers(1, 4 if table == "dos" else 6)) + 1):
        start += draw(st.integers(0, 3)) * align  # gaps between partitions
        fs = draw(st.sampled_from(FILESYSTEMS))
        size = draw(st.integers(1, 4096)) * align  # 1 MiB to 4 GiB
        used = draw(st.integers(0, size * ss)) if fs not in ("swap", None) else 0
        parts.append(Partition(number, start, size, TYPES[table][fs], filesystem=fs,
                               uuid=f"{number:08X}-0000-0000-0000-000000000000",
                               fs_uuid=f"fs-{number}", fs_label=f"L{number}",
                               method="recreate" if fs == "swap" else "used-blocks",
                               used_bytes=used))
        start += size
    disk.partitions = parts
    end = start + draw(st.integers(0, 2)) * align
    disk.size_bytes = geometry.needed_disk_sectors(table, end, ss) * ss
    disk.first_lba = geometry.first_usable(table, ss) if table == "gpt" else None
    disk.last_lba = disk.sectors - 1 - geometry.gpt_entry_sectors(ss) if table == "gpt" \
        else None
    return m


def _need(m: Manifest) -> int:
    disk = m.disks[0]
    end = max(p.start + p.size for p in disk.partitions)
    return geometry.needed_disk_sectors(disk.table, end, disk.logical_sector_size)


def _check_shrunk_plan(m: Manifest, sectors: int) -> None:
    disk = m.disks[0]
    ss = disk.logical_sector_size
    align = geometry.align_sectors(ss)
    plan = plan_restore(m, _target(sectors * ss, ss), RestoreOptions(), firmware="bios")
    src = {p.number: p for p in disk.partitions}
    got = sorted(plan.partitions, key=lambda p: p.start)
    # order, numbers, types kept; inside the usable area; no overlap
    assert [p.number for p in got] == [p.number for p in
                                       sorted(disk.partitions, key=lambda p: p.start)]
    first = geometry.first_usable(disk.table, ss)
    end = geometry.usable_end(disk.table, sectors, ss)
    for a, b in zip(got, got[1:], strict=False):
        assert a.start + a.size <= b.start
    assert got[0].start >= first and got[-1].start + got[-1].size <= end
    for p in got:
        s = src[p.number]
        assert p.type == s.type and p.source_size == s.size and p.source_start == s.start
        assert p.start % align == s.start % align  # moved by whole MiB only
        if p.rebuild:
            assert p.filesystem in registry.rebuildable()
            assert p.size < s.size and p.shrunk
            assert p.size >= rebuild_floor(p.filesystem, s.used_bytes, ss, align)
            assert p.data_bytes == s.used_bytes
        else:
            assert p.size == s.size  # only a rebuilt partition changes size
    shrunk = [p for p in got if p.rebuild]
    if shrunk:
        assert "rebuild-filesystems" in plan.steps
        assert any("shrunk from" in line for line in plan.summary_lines())
        # the largest shrinkable partition is the first to give up space
        biggest = max((src[p.number] for p in got if p.filesystem in registry.rebuildable()),
                      key=lambda s: (s.size, -s.start))
        assert plan.partition(biggest.number).rebuild or biggest.size <= rebuild_floor(
            biggest.filesystem, biggest.used_bytes, ss, align)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts(), st.floats(0.05, 0.9999))
def test_a_smaller_disk_gets_a_shrunk_plan_or_the_smallest_disk_that_works(
        m: Manifest, fraction: float) -> None:
    disk = m.disks[0]
    ss = disk.logical_sector_size
    need = _need(m)
    sectors = max(geometry.first_usable(disk.table, ss) + 64, int(need * fraction))
    assume(sectors < need)
    if any(p.kind != "primary" for p in disk.partitions):
        return
    try:
        _check_shrunk_plan(m, sectors)
        return
    except TargetTooSmallError as exc:
        message = str(exc)
    named = [int(x) for x in re.findall(r"\((\d+) bytes\)", message)]
    assert named[:2] == [sectors * ss, need * ss], message
    if len(named) == 3:  # "even with ... shrunk, the image needs N": N works, N - 1 not
        least = named[2] // ss
        assert sectors < least <= need
        _check_shrunk_plan(m, least)
        with pytest.raises(TargetTooSmallError):
            plan_restore(m, _target((least - 1) * ss, ss), RestoreOptions())
    else:
        assert "None of its partitions can be shrunk" in message
        assert not any(p.filesystem in registry.rebuildable() for p in disk.partitions)


def _root_disk(used: int) -> Manifest:
    m = sample_manifest()
    disk = m.disks[0]
    disk.size_bytes = 500 * GiB
    disk.last_lba = disk.sectors - 34
    disk.partitions = [
        Partition(1, 2048, 1048576, TYPES["gpt"]["vfat"], filesystem="vfat",
                  used_bytes=30 * MiB, fs_uuid="ABCD-1234"),
        Partition(2, 1050624, 900 * 2097152, TYPES["gpt"]["ext4"], filesystem="ext4",
                  used_bytes=used, fs_uuid="1f0e..."),
        Partition(3, 1050624 + 900 * 2097152, 8 * 2097152, TYPES["gpt"]["swap"],
                  filesystem="swap", method="recreate"),
        Partition(4, 1050624 + 908 * 2097152, 2 * 2097152, TYPES["gpt"]["ntfs"],
                  filesystem="ntfs", used_bytes=GiB),
    ]
    return m


def test_the_technicians_case_a_465_gb_root_onto_a_240_gb_ssd() -> None:
    m = _root_disk(used=180 * GiB)
    plan = plan_restore(m, _target(240 * 1000**3, 512), RestoreOptions())
    root = plan.partition(2)
    assert root.rebuild and not plan.partition(1).rebuild  # the largest goes first
    assert not plan.partition(3).rebuild and not plan.partition(4).rebuild
    assert plan.partition(3).size == 8 * 2097152 and plan.partition(4).size == 2 * 2097152
    assert plan.partition(3).start == root.start + root.size  # moved down behind it
    line = next(x for x in plan.summary_lines() if x.strip().startswith("2:"))
    assert "shrunk from 900.0 GiB" in line and "files copied one by one" in line
    assert plan.data_bytes < 200 * GiB


def test_refused_with_the_size_that_works_when_the_data_does_not_fit() -> None:
    m = _root_disk(used=400 * GiB)
    with pytest.raises(TargetTooSmallError) as err:
        plan_restore(m, _target(240 * 1000**3, 512), RestoreOptions())
    message = str(err.value)
    assert "Even with 1 (vfat), 2 (ext4) shrunk to what their data needs" in message
    assert "Not shrunk: 3 (swap), 4 (ntfs)" in message
    least = int(re.findall(r"\((\d+) bytes\)", message)[2])
    assert 400 * GiB < least < 500 * GiB
    plan_restore(m, _target(least, 512), RestoreOptions())  # and that size works


def test_no_shrinking_when_told_not_to() -> None:
    m = _root_disk(used=10 * GiB)
    with pytest.raises(TargetTooSmallError, match="Use a disk at least that large"):
        plan_restore(m, _target(240 * 1000**3, 512), RestoreOptions(shrink=False))


def test_an_mbr_with_logical_partitions_is_not_shrunk() -> None:
    m = _root_disk(used=10 * GiB)
    disk = m.disks[0]
    disk.table = "dos"
    disk.last_lba = None
    disk.partitions = [
        Partition(1, 2048, 900 * 2097152, "83", filesystem="ext4", used_bytes=GiB),
        Partition(2, 2048 + 900 * 2097152, 8 * 2097152, "5", kind="extended", method="none"),
        Partition(5, 4096 + 900 * 2097152, 4 * 2097152, "82", kind="logical",
                  filesystem="swap", method="recreate"),
    ]
    with pytest.raises(TargetTooSmallError, match="logical partitions is not shrunk"):
        plan_restore(m, _target(240 * 1000**3, 512), RestoreOptions())
